# The train function's own binary as a container image, for TrainRunner fargate
# (infra/template.yaml, docs/SCALING.md). Outside Lambda, with MLOPS_STEP_INPUT_KEY set, it runs
# one step on the input the state machine wrote to the bucket and exits.
#
#   cargo lambda build --release --bin train        # or: cargo build --release --bin train
#   docker build -f infra/train.Dockerfile -t REPOSITORY_URI:TAG DIR_HOLDING_bootstrap
#   docker push REPOSITORY_URI:TAG                  # then deploy with TrainImage=REPOSITORY_URI:TAG
#
# The binary is built for Lambda's provided.al2023, so the image is Amazon Linux 2023 too.
FROM public.ecr.aws/amazonlinux/amazonlinux:2023-minimal
COPY bootstrap /usr/local/bin/train
USER 1000
ENTRYPOINT ["/usr/local/bin/train"]
