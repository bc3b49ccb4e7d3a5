"""The token sale: its terms and config, the allow-list, deployment, operation and the
rehearsal run."""
