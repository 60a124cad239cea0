"""Prints the IAM policies of every role in infra/template.yaml, as deployed.

    python role_policies.py TEMPLATE VALUES_JSON

VALUES_JSON maps what the policies refer to, as CloudFormation would resolve it: pseudo
parameters (`AWS::Partition`, ...), parameters (`ProjectName`), `Ref`s of resources (a topic's
or a state machine's ARN) and `GetAtt`s (`PrepLogGroup.Arn`). The output is one JSON object:
role logical id -> list of policy documents, every intrinsic function resolved. A reference
that VALUES_JSON does not name is an error, so a new one in the template is never skipped.
"""

import json
import re
import sys

from cfnlint.decode import cfn_yaml


def resolve(node, values):
    if isinstance(node, dict):
        if len(node) == 1:
            (function, argument), = node.items()
            if function == "Ref":
                return lookup(values, argument)
            if function == "Fn::GetAtt":
                name = argument if isinstance(argument, str) else ".".join(argument)
                return lookup(values, name)
            if function == "Fn::Sub":
                text, local = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
                scope = {**values, **{k: resolve(v, values) for k, v in local.items()}}
                return re.sub(r"\$\{([^}!]+)\}", lambda m: lookup(scope, m.group(1)), text)
        return {key: resolve(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(item, values) for item in node]
    return str(node) if isinstance(node, str) else node


def lookup(values, name):
    if name not in values:
        sys.exit(f"role_policies.py: the template refers to {name!r}, which the test does not define")
    return values[name]


def main():
    template = cfn_yaml.load(sys.argv[1])
    values = json.loads(sys.argv[2])
    roles = {
        name: [resolve(policy["PolicyDocument"], values) for policy in resource["Properties"].get("Policies", [])]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
    }
    json.dump(roles, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
