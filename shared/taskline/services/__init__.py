"""Business rules. Each public function is one use case and owns its transaction."""
