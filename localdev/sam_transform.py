"""Print a SAM template as CloudFormation receives it: the AWS::Serverless-2016-10-31 transform,
run offline by aws-sam-translator (the library `sam deploy` uses), as JSON.

    .venv-cfn/bin/python localdev/sam_transform.py template.yaml

Runs in .venv-cfn (`make test` builds it from requirements-cfn.txt): aws-sam-translator pins an
older pydantic than the layer. Code locations become S3 URIs, as after `sam package`; no AWS
call is made (managed policy names are not resolved).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def main(template_path: str) -> None:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    document: dict[str, Any] = yaml_parse(Path(template_path).read_text())
    for name, resource in document["Resources"].items():
        properties = resource.setdefault("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            properties["CodeUri"] = f"s3://taskline-artifacts/{name}.zip"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            properties["ContentUri"] = f"s3://taskline-artifacts/{name}.zip"

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    json.dump(transform(document, {}, NoManagedPolicies()), sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
