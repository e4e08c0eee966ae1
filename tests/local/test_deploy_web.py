"""`make deploy-web`: web/ lands in the bucket as the app serves it, stale files go, and the
distribution is invalidated (moto for S3 and CloudFront)."""

from __future__ import annotations

from pathlib import Path

import boto3
from moto import mock_aws

from localdev import deploy_web
from localdev.web_app import WEB_DIR


@mock_aws
def test_upload_puts_every_file_with_its_type_and_removes_stale_ones() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="web")
    s3.put_object(Bucket="web", Key="app/old.js", Body=b"gone")
    s3.put_object(Bucket="web", Key="elsewhere.txt", Body=b"kept")
    uploaded, deleted = deploy_web.upload(s3, "web")
    assert "app/index.html" in uploaded
    assert "app/screens/tasks.js" in uploaded
    assert deleted == ["app/old.js"]
    page = s3.get_object(Bucket="web", Key="app/index.html")
    assert page["ContentType"] == "text/html; charset=utf-8"
    assert page["Body"].read() == (WEB_DIR / "index.html").read_bytes()
    script = s3.head_object(Bucket="web", Key="app/main.js")
    assert script["ContentType"] == "text/javascript; charset=utf-8"
    assert "s-maxage" in script["CacheControl"]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="web")["Contents"]}
    assert "elsewhere.txt" in keys
    assert "app/old.js" not in keys
    expected = {
        f"app/{p.relative_to(WEB_DIR).as_posix()}" for p in WEB_DIR.rglob("*") if p.is_file()
    }
    assert set(uploaded) == expected


def test_only_the_apps_files_are_uploaded(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / "notes.txt").write_text("not served")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    assert [key for key, _ in deploy_web.files(tmp_path)] == ["app/index.html"]


@mock_aws
def test_the_distribution_is_invalidated() -> None:
    cloudfront = boto3.client("cloudfront", region_name="us-east-1")
    distribution = cloudfront.create_distribution(
        DistributionConfig={
            "CallerReference": "x",
            "Comment": "",
            "Enabled": True,
            "Origins": {
                "Quantity": 1,
                "Items": [
                    {
                        "Id": "app",
                        "DomainName": "web.s3.amazonaws.com",
                        "S3OriginConfig": {"OriginAccessIdentity": ""},
                    }
                ],
            },
            "DefaultCacheBehavior": {
                "TargetOriginId": "app",
                "ViewerProtocolPolicy": "redirect-to-https",
                "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6",
            },
        }
    )["Distribution"]
    invalidation = deploy_web.invalidate(cloudfront, distribution["Id"])
    listed = cloudfront.list_invalidations(DistributionId=distribution["Id"])["InvalidationList"]
    assert [item["Id"] for item in listed["Items"]] == [invalidation]
