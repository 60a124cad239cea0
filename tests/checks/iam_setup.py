"""Sets up moto's server for the least-privilege test (tests/aws_iam.rs) and prints credentials.

    python iam_setup.py ENDPOINT TEMPLATE [--without ROLE:INDEX]

With IAM checks off it resets moto, creates the data bucket, the SNS topics and the state
machine, and one IAM user per role of the template carrying exactly that role's policies
(rendered by role_policies.py; `--without` drops one statement); then it turns moto's IAM
checks on (every later request is authenticated and authorized) and prints
{"ROLE": {"key": ..., "secret": ...}, "resources": {...}} as JSON.

What moto 5.2 cannot evaluate is adapted here, and only that:
- It evaluates no condition key in an identity policy (an Allow with a Condition acts as a
  Deny), so the Condition of each s3:ListBucket statement is dropped, after checking that the
  prefixes it allows are exactly the prefixes the role may read (s3:GetObject).
- It authorizes SNS and Step Functions calls against the resource "*", so the Resource of
  those statements becomes "*": the test proves the action is granted, not its ARN.
"""

import json
import sys
import urllib.request

import boto3

from role_policies import resolve
from cfnlint.decode import cfn_yaml

ACCOUNT = "123456789012"
REGION = "us-east-1"
PROJECT = "mlops"
BUCKET = f"{PROJECT}-data-{ACCOUNT}-{REGION}"
LOGGED_BY_LAMBDA = {"logs:CreateLogStream", "logs:PutLogEvents"}


def post(endpoint, path, body=b""):
    # A plain body: moto's reset-auth reads the raw data, which a form content type would hide.
    request = urllib.request.Request(endpoint + path, data=body, method="POST", headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def client(service, endpoint):
    return boto3.client(
        service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id="setup", aws_secret_access_key="setup"
    )


def actions(statement):
    value = statement.get("Action", [])
    return [value] if isinstance(value, str) else value


def resources(statement):
    value = statement.get("Resource", [])
    return [value] if isinstance(value, str) else value


def adapted(role, document, dropped=None):
    """The role's policy as moto can evaluate it, less the statement at index `dropped`."""
    statements = document["Statement"]
    read = {r.split(BUCKET + "/", 1)[1] for s in statements if "s3:GetObject" in actions(s) for r in resources(s)}
    out = []
    for index, statement in enumerate(statements):
        if index == dropped:
            continue
        statement = dict(statement)
        if "s3:ListBucket" in actions(statement) and "Condition" in statement:
            listed = set(statement["Condition"]["StringLike"]["s3:prefix"])
            if listed != read:
                sys.exit(f"{role}: s3:ListBucket allows {sorted(listed)} but the role reads {sorted(read)}")
            del statement["Condition"]
        if any(a.split(":")[0] in ("sns", "states") for a in actions(statement)):
            statement["Resource"] = "*"
        out.append(statement)
    return {**document, "Statement": out}


def main():
    endpoint, template_path = sys.argv[1], sys.argv[2]
    without = None
    if len(sys.argv) > 4 and sys.argv[3] == "--without":
        role, index = sys.argv[4].split(":")
        without = (role, int(index))
    post(endpoint, "/moto-api/reset-auth", b"inf")
    post(endpoint, "/moto-api/reset")

    s3, sns, sfn, iam = (client(s, endpoint) for s in ("s3", "sns", "stepfunctions", "iam"))
    s3.create_bucket(Bucket=BUCKET)
    topics = {name: sns.create_topic(Name=f"{PROJECT}-{name}")["TopicArn"] for name in ("drift-alerts", "pipeline-events", "pipeline-failures")}
    machine = sfn.create_state_machine(
        name=f"{PROJECT}-pipeline",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/{PROJECT}-pipeline",
    )["stateMachineArn"]

    values = {"AWS::Partition": "aws", "AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "ProjectName": PROJECT}
    values.update(AlertTopic=topics["drift-alerts"], EventsTopic=topics["pipeline-events"], FailureTopic=topics["pipeline-failures"])
    values["PipelineStateMachine"] = machine
    score_machine = sfn.create_state_machine(
        name=f"{PROJECT}-score",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/{PROJECT}-score",
    )["stateMachineArn"]
    values["ScoreStateMachine"] = score_machine
    # Only service roles (Step Functions', EventBridge's) name the drift state machine.
    values["DriftStateMachine"] = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{PROJECT}-drift"
    template = cfn_yaml.load(template_path)
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Logs::LogGroup":
            values[f"{name}.Arn"] = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*"
        if resource["Type"] == "AWS::Lambda::Function":
            values[f"{name}.Arn"] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"

    credentials = {}
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        iam.create_user(UserName=name)
        for number, policy in enumerate(resource["Properties"].get("Policies", [])):
            document = resolve(policy["PolicyDocument"], values)
            dropped = without[1] if without and without[0] == name else None
            iam.put_user_policy(UserName=name, PolicyName=f"p{number}", PolicyDocument=json.dumps(adapted(name, document, dropped)))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        credentials[name] = {"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    # The operator who uploads data and the spec, as a person with the console would.
    iam.create_user(UserName="Operator")
    iam.put_user_policy(
        UserName="Operator",
        PolicyName="all",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
    )
    key = iam.create_access_key(UserName="Operator")["AccessKey"]
    credentials["Operator"] = {"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}

    # Each statement a removal can be tried on: index by role, with what it grants.
    statements = {
        name: [
            {"index": i, "actions": actions(s), "by_lambda": set(actions(s)) <= LOGGED_BY_LAMBDA}
            for i, s in enumerate(resolve(resource["Properties"]["Policies"][0]["PolicyDocument"], values)["Statement"])
        ]
        for name, resource in template["Resources"].items()
        # Roles with only managed policies (the Fargate task's execution role) have none to remove.
        if resource["Type"] == "AWS::IAM::Role" and resource["Properties"].get("Policies")
    }
    post(endpoint, "/moto-api/reset-auth", b"0")
    json.dump(
        {
            "credentials": credentials,
            "statements": statements,
            "resources": {
                "bucket": BUCKET,
                "alert_topic": topics["drift-alerts"],
                "state_machine": machine,
                "score_state_machine": score_machine,
            },
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
