"""`make deploy-web STACK=taskline`: upload web/ to the stack's private bucket and invalidate
the CloudFront distribution in front of it (the stack deployed with WebApp=true).

Each file goes to `app/<path>` with its content type and a Cache-Control that lets CloudFront
keep it a day (the invalidation at the end makes a deploy visible at once) while browsers
revalidate on every load (a 304 when unchanged). Files no longer in web/ are removed. The
bucket keeps old versions 30 days (template.yaml), so a bad upload can be rolled back.

    STACK      the stack's name (required); AWS_REGION / AWS_PROFILE as for the AWS CLI
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from localdev.web_app import WEB_DIR, content_type

PREFIX = "app/"
CACHE_CONTROL = "max-age=0, must-revalidate, s-maxage=86400"
UPLOADED_SUFFIXES = {".html", ".js", ".css", ".png", ".svg"}


def files(web_dir: Path = WEB_DIR) -> list[tuple[str, Path]]:
    """(key, file) for every file the app serves."""
    return sorted(
        (PREFIX + path.relative_to(web_dir).as_posix(), path)
        for path in web_dir.rglob("*")
        if path.is_file() and path.suffix in UPLOADED_SUFFIXES
    )


def stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    (description,) = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs", [])}


def upload(s3: Any, bucket: str, web_dir: Path = WEB_DIR) -> tuple[list[str], list[str]]:
    """Put every file, then delete what is no longer there: (uploaded keys, deleted keys)."""
    wanted = files(web_dir)
    for key, path in wanted:
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=path.read_bytes(),
            ContentType=content_type(path),
            CacheControl=CACHE_CONTROL,
        )
    keys = {key for key, _ in wanted}
    stale: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
        stale += [o["Key"] for o in page.get("Contents", []) if o["Key"] not in keys]
    for start in range(0, len(stale), 1000):
        chunk = stale[start : start + 1000]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk]})
    return sorted(keys), stale


def invalidate(cloudfront: Any, distribution_id: str) -> str:
    """One wildcard path (the first 1,000 paths a month are free): the invalidation's id."""
    answer = cloudfront.create_invalidation(
        DistributionId=distribution_id,
        InvalidationBatch={
            "Paths": {"Quantity": 2, "Items": ["/app/*", "/"]},
            "CallerReference": f"taskline-web-{time.time_ns()}",
        },
    )
    return str(answer["Invalidation"]["Id"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make deploy-web", description=__doc__)
    parser.add_argument("stack", nargs="?", default="")
    args = parser.parse_args(argv)
    if not args.stack:
        parser.error("name the stack: make deploy-web STACK=taskline")
    import boto3

    outputs = stack_outputs(boto3.client("cloudformation"), args.stack)
    if "WebAppBucketName" not in outputs:
        print(
            f"Stack {args.stack} has no web app: deploy it with WebApp=true first", file=sys.stderr
        )
        return 1
    uploaded, deleted = upload(boto3.client("s3"), outputs["WebAppBucketName"])
    print(
        f"Uploaded {len(uploaded)} files to s3://{outputs['WebAppBucketName']}/{PREFIX}"
        f" ({len(deleted)} old ones removed)"
    )
    invalidation = invalidate(boto3.client("cloudfront"), outputs["WebAppDistributionId"])
    print(f"CloudFront invalidation {invalidation} started (about a minute)")
    print(f"The app: {outputs['WebAppUrl']}   then: make smoke APP_URL={outputs['WebAppUrl']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
