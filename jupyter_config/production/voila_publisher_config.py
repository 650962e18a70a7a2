# Production configuration of the public Voila host: /etc/voila-publisher/config.py, read by
# voila-publisher.service (as `publisher`) and voila-dashboards.service (as `voila`, through
# --exec-voila). It holds no secret: the shared secret is a 0600 file of `publisher`.
# docs/publish.md explains the host; tests/unit/test_production_configs.py loads this file.
c = get_config()  # noqa: F821

c.PublisherService.ip = "127.0.0.1"  # nginx is the only client
c.PublisherService.port = 8870
c.PublisherService.dashboards_dir = "/var/lib/voila-publisher/dashboards"
c.PublisherService.static_dir = "/var/lib/voila-publisher/static"  # nginx's group reads it
c.PublisherService.public_url = "https://dashboards.example.org"  # CHANGE ME
# The secret the hub derives publish tokens from (RemoteSpawner.publisher_secret_file there).
c.PublisherService.shared_secret_file = "/etc/voila-publisher/secret"
# During a rotation: the previous secret, still accepted until no server from before it runs
# (docs/operations.md). Empty otherwise.
c.PublisherService.previous_secret_files = []
c.PublisherService.versions_kept = 3
c.PublisherService.prune_grace = 300

# Voila is a unit of its own under the `voila` account; the two share this token (publisher:voila 0640).
c.PublisherService.start_voila = False
c.PublisherService.control_token_file = "/var/lib/voila-publisher/control_token"
c.PublisherService.voila_ip = "127.0.0.1"
c.PublisherService.voila_port = 8866

# The dashboard kernels' sandbox (docs/publish.md).
c.PublisherService.kernel_memory_limit = 2 * 1024**3
c.PublisherService.kernel_cpu_limit = 600
c.PublisherService.kernel_lifetime = 3600
c.PublisherService.max_live_kernels = 40
c.PublisherService.execution_timeout = 60
c.PublisherService.cull_idle_timeout = 600
