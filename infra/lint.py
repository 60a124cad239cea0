"""Lints infra/template.yaml with cfn-lint, the state machine definition substituted in.

The deployed template reads the definition from S3 (DefinitionS3Location), where cfn-lint cannot
see it; this check inlines statemachine/pipeline.asl.json as the state machine's Definition, so
the Amazon States Language is validated together with the template. Any error or warning fails.

    python infra/lint.py            # with cfn-lint installed (tests/checks/install.sh)
"""

import json
import pathlib
import subprocess
import sys
import tempfile

from cfnlint.decode import cfn_yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent


def inlined_template() -> dict:
    template = cfn_yaml.load(str(ROOT / "infra" / "template.yaml"))
    definition = json.loads((ROOT / "statemachine" / "pipeline.asl.json").read_text())
    machines = [
        resource["Properties"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    if not machines:
        sys.exit("infra/template.yaml has no AWS::StepFunctions::StateMachine")
    for properties in machines:
        properties.pop("DefinitionS3Location", None)
        properties["Definition"] = definition
    return template


def main() -> int:
    with tempfile.TemporaryDirectory() as work:
        path = pathlib.Path(work) / "template.json"
        path.write_text(json.dumps(inlined_template(), indent=1))
        # Warnings count as failures: cfn-lint exits 0 only when it found nothing.
        result = subprocess.run([str(pathlib.Path(sys.executable).parent / "cfn-lint"), "--format", "parseable", str(path)])
        lint_yaml = subprocess.run([str(pathlib.Path(sys.executable).parent / "cfn-lint"), "--format", "parseable", str(ROOT / "infra" / "template.yaml")])
    if result.returncode or lint_yaml.returncode:
        print("cfn-lint found problems in infra/template.yaml (above)", file=sys.stderr)
        return 1
    print("cfn-lint: infra/template.yaml and statemachine/pipeline.asl.json are clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
