#!/bin/bash
# Publish a node image's AMI id to the SSM parameter the hub reads at each spawn
# (c.EC2Spawner.image = "resolve:ssm:<parameter>"; docs/node-image.md). Run it after the AMI is
# created, with credentials that may ssm:PutParameter on that one parameter (the image
# pipeline's, never the hub's: the hub only reads it).
#
# Usage: publish-ami.sh AMI_ID
# Settings (environment):
#   SSM_PARAMETER   the parameter name            (default: /research/jupyter-node/ami, the template's)
#   AWS_REGION      the region of image and hub   (required)
#   ENDPOINT_URL    another endpoint for EC2 and SSM (tests, LocalStack); empty on AWS
set -euo pipefail

AMI_ID=${1:-}
SSM_PARAMETER=${SSM_PARAMETER:-/research/jupyter-node/ami}
[[ "$AMI_ID" =~ ^ami-[0-9a-f]{8}([0-9a-f]{9})?$ ]] || { echo "publish-ami: '$AMI_ID' is not an AMI id (ami- and 8 or 17 hex digits)" >&2; exit 2; }
[[ "$SSM_PARAMETER" == /* ]] || { echo "publish-ami: SSM_PARAMETER '$SSM_PARAMETER' must start with /" >&2; exit 2; }
[ -n "${AWS_REGION:-}" ] || { echo "publish-ami: set AWS_REGION" >&2; exit 2; }

aws_args=(--region "$AWS_REGION")
[ -z "${ENDPOINT_URL:-}" ] || aws_args+=(--endpoint-url "$ENDPOINT_URL")

# Only an image that exists and is ready may become the one every new server boots from.
state=$(aws "${aws_args[@]}" ec2 describe-images --image-ids "$AMI_ID" --query 'Images[0].State' --output text 2>/dev/null || true)
[ "$state" = "available" ] || { echo "publish-ami: image $AMI_ID is not available in $AWS_REGION (state: ${state:-not found}); nothing published" >&2; exit 3; }

aws "${aws_args[@]}" ssm put-parameter --name "$SSM_PARAMETER" --value "$AMI_ID" \
    --type String --data-type aws:ec2:image --overwrite --description "Jupyter node image (published by publish-ami.sh)" >/dev/null
echo "publish-ami: $SSM_PARAMETER = $AMI_ID"
