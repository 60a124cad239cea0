"""Lints infra/template.yaml with cfn-lint, the state machine definition substituted in.

The deployed template reads the definition from S3 (DefinitionS3Location), where cfn-lint cannot
see it; this check inlines each state machine's definition (statemachine/NAME.asl.json, named by
the resource's DefinitionS3Location key) as its Definition, so the Amazon States Language is
validated together with the template. Any error or warning fails.

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
    machines = [
        resource["Properties"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    if not machines:
        sys.exit("infra/template.yaml has no AWS::StepFunctions::StateMachine")
    for properties in machines:
        # Key: !Sub "${CodePrefix}NAME.asl.json"
        key = properties.pop("DefinitionS3Location")["Key"]["Fn::Sub"]
        name = key.rsplit("}", 1)[-1]
        properties["Definition"] = json.loads((ROOT / "statemachine" / name).read_text())
    return template


def transitions(state: dict) -> list:
    """The states a state can go to next."""
    targets = [state.get("Next"), state.get("Default")]
    targets += [choice.get("Next") for choice in state.get("Choices", [])]
    targets += [catch.get("Next") for catch in state.get("Catch", [])]
    return [t for t in targets if t]


def broken_transitions(machine: dict, where: str) -> list:
    """cfn-lint does not follow transitions: every Next, Default, Choice and Catch must name a
    state of the same scope, and every state must be reachable from StartAt (Map item
    processors and Parallel branches are scopes of their own)."""
    states = machine["States"]
    problems = [f"{where}: StartAt {machine['StartAt']!r} is no state"] if machine["StartAt"] not in states else []
    seen, todo = set(), [machine["StartAt"]]
    while todo:
        name = todo.pop()
        if name in seen or name not in states:
            continue
        seen.add(name)
        for target in transitions(states[name]):
            if target not in states:
                problems.append(f"{where}: {name} goes to {target!r}, which is no state")
            todo.append(target)
    problems += [f"{where}: {name} cannot be reached" for name in states if name not in seen]
    for name, state in states.items():
        for scope in [state.get("ItemProcessor") or state.get("Iterator")] + state.get("Branches", []):
            if scope:
                problems += broken_transitions(scope, f"{where} {name}")
    return problems


def main() -> int:
    problems = []
    for path in sorted((ROOT / "statemachine").glob("*.asl.json")):
        problems += broken_transitions(json.loads(path.read_text()), path.name)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as work:
        path = pathlib.Path(work) / "template.json"
        path.write_text(json.dumps(inlined_template(), indent=1))
        # Warnings count as failures: cfn-lint exits 0 only when it found nothing.
        result = subprocess.run([str(pathlib.Path(sys.executable).parent / "cfn-lint"), "--format", "parseable", str(path)])
        lint_yaml = subprocess.run([str(pathlib.Path(sys.executable).parent / "cfn-lint"), "--format", "parseable", str(ROOT / "infra" / "template.yaml")])
    if result.returncode or lint_yaml.returncode:
        print("cfn-lint found problems in infra/template.yaml (above)", file=sys.stderr)
        return 1
    print("cfn-lint: infra/template.yaml and statemachine/*.asl.json are clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
