"""The web app's part of the stack (WebApp=true, issue 22): a private bucket read only by the
distribution through origin access control, the API's every route on the same distribution,
the security headers, names within AWS's limits for the longest stack name."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
from typing import Any

import pytest

from localdev.template import load
from tests.stack.test_template_lifecycle import Stack, transformed_template

WEB_TYPES = ("AWS::CloudFront::", "AWS::S3::")


@pytest.fixture(scope="module")
def stack() -> Stack:
    return Stack(transformed_template(), {"WebApp": "true"})


def test_without_the_parameter_the_stack_has_no_web_app() -> None:
    stack = Stack(transformed_template(), {})
    assert not [n for n, r in stack.resources.items() if r["Type"].startswith(WEB_TYPES)]


def test_the_bucket_is_private_and_read_only_by_the_distribution(stack: Stack) -> None:
    bucket = stack.resources["WebAppBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    statements = stack.resources["WebAppBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    allows = [s for s in statements if s["Effect"] == "Allow"]
    assert len(allows) == 1
    (allow,) = allows
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert allow["Action"] == "s3:GetObject"
    source = json.dumps(allow["Condition"]["StringEquals"]["AWS:SourceArn"])
    assert "WebAppDistribution" in source  # this distribution, no other
    app_origin = _origin(stack, "app")
    assert app_origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    assert app_origin["OriginAccessControlId"] == {
        "Fn::GetAtt": ["WebAppOriginAccessControl", "Id"]
    }


def _origin(stack: Stack, origin_id: str) -> dict[str, Any]:
    config = stack.resources["WebAppDistribution"]["Properties"]["DistributionConfig"]
    (origin,) = [o for o in config["Origins"] if o["Id"] == origin_id]
    return dict(origin)


def test_every_api_route_goes_to_the_api_uncached_and_the_rest_to_the_app(stack: Stack) -> None:
    config = stack.resources["WebAppDistribution"]["Properties"]["DistributionConfig"]
    behaviours = config["CacheBehaviors"]
    assert len(behaviours) <= 25  # CloudFront's default quota per distribution
    assert "HttpApi" in json.dumps(_origin(stack, "api")["DomainName"])
    for behaviour in behaviours:
        assert behaviour["TargetOriginId"] == "api"
        assert behaviour["ViewerProtocolPolicy"] == "https-only"  # a redirect would drop a POST
        assert set(behaviour["AllowedMethods"]) == {
            "GET",
            "HEAD",
            "OPTIONS",
            "PUT",
            "PATCH",
            "POST",
            "DELETE",
        }
        assert (
            behaviour["CachePolicyId"] == "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
        )  # CachingDisabled
    patterns = [b["PathPattern"] for b in behaviours]
    routes = {route.path for route, _ in load().routes()} - {"/", "/{proxy+}"}
    assert routes
    for path in sorted(routes):
        sample = re.sub(r"\{[^}]+\}", "x1", path)
        assert any(fnmatch.fnmatchcase(sample, p) for p in patterns), f"{path} has no behaviour"
    assert not any(fnmatch.fnmatchcase("/app/index.html", p) for p in patterns)
    default = config["DefaultCacheBehavior"]
    assert default["TargetOriginId"] == "app"
    assert default["ResponseHeadersPolicyId"] == {"Ref": "WebAppHeadersPolicy"}
    assert default["ViewerProtocolPolicy"] == "redirect-to-https"


def test_names_fit_aws_limits_for_the_longest_stack_name(stack: Stack) -> None:
    # https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-limits.html
    names = {
        "WebAppOriginAccessControl": (
            stack.resources["WebAppOriginAccessControl"]["Properties"]["OriginAccessControlConfig"][
                "Name"
            ],
            64,
        ),
        "WebAppPathFunction": (stack.resources["WebAppPathFunction"]["Properties"]["Name"], 64),
        "WebAppHeadersPolicy": (
            stack.resources["WebAppHeadersPolicy"]["Properties"]["ResponseHeadersPolicyConfig"][
                "Name"
            ],
            128,
        ),
    }
    for resource, (node, limit) in names.items():
        built = stack.value(node)
        assert len(built) <= limit, (resource, built)
        assert re.fullmatch(r"[A-Za-z0-9_-]+", built), (resource, built)


@pytest.mark.skipif(not shutil.which("node"), reason="needs Node.js to run the CloudFront Function")
def test_the_path_function_redirects_the_root_and_serves_index_html(stack: Stack) -> None:
    code = stack.resources["WebAppPathFunction"]["Properties"]["FunctionCode"]
    script = (
        code
        + """
const out = {};
for (const uri of ["/", "/app", "/app/", "/app/main.js", "/app/screens/tasks.js"]) {
  out[uri] = handler({request: {uri, headers: {}}});
}
console.log(JSON.stringify(out));
"""
    )
    done = subprocess.run(
        ["node", "-e", script], capture_output=True, text=True, timeout=30, check=True
    )
    out = json.loads(done.stdout)
    assert out["/"]["statusCode"] == 302
    assert out["/"]["headers"]["location"]["value"] == "/app/"
    assert out["/app"]["statusCode"] == 302
    assert out["/app/"]["uri"] == "/app/index.html"
    assert out["/app/main.js"]["uri"] == "/app/main.js"


def test_a_failed_first_deploy_leaves_nothing_behind(stack: Stack) -> None:
    """The bucket outlives the stack (it holds objects), but not the rollback of a failed
    create, when it is still empty (RetainExceptOnCreate)."""
    for name, resource in stack.resources.items():
        if resource["Type"].startswith(WEB_TYPES):
            assert stack.value(resource.get("DeletionPolicy", "Delete")) != "Retain", name
    assert stack.resources["WebAppBucket"]["DeletionPolicy"] == "RetainExceptOnCreate"


def test_make_cost_knows_every_web_app_resource() -> None:
    from localdev.cost import Stack as CostStack
    from localdev.cost import transformed_template as cost_template
    from localdev.cost import unpriced_types

    assert unpriced_types(CostStack(cost_template(), {"WebApp": "true"})) == set()
