"""The SSH proxy: asyncssh on both sides, hosted in gateway.ssh.host; see gateway/SSH.md."""
