"""EC2 backend: :mod:`.spawner` (lifecycle), :mod:`.plan` (pure request builders),
:mod:`.status` (one DescribeInstances per refresh), :mod:`.client` (boto3 clients)."""
