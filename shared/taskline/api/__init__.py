"""HTTP plumbing shared by the functions: the resolver, problem responses, auth, links."""
