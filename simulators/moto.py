"""moto in server mode: a real HTTP endpoint for EC2, SSM, STS and S3."""

from __future__ import annotations

from simulators.processes import ManagedProcess, child_env, free_port, http_ok, venv_bin_dir

# Dummy credentials: moto accepts any; real AWS rejects them, so they can never leak anywhere useful.
MOTO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class MotoServer(ManagedProcess):
    def __init__(self, log_dir, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            "moto",
            # moto's server with RunInstances idempotent on ClientToken, as AWS is (simulators/moto_server.py)
            [venv_bin_dir() / "python", "-m", "simulators.moto_server", "-H", "127.0.0.1", "-p", self.port],
            log_dir=log_dir,
            env=child_env(MOTO_CREDENTIALS),
            ready=http_ok(f"{self.url}/moto-api/"),
        )

    def reset(self) -> None:
        """Forget every resource (moto's reset API), so tests start from an empty account."""
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", method="POST"), timeout=5)
