"""The provider agent's compute side: run shards resumably, publish and serve bundles."""

from neurotoken.provider.compute import ComputeReport, Journal, compute_job
from neurotoken.provider.publish import publish_bundle
from neurotoken.provider.server import BundleServer, make_app

__all__ = ["BundleServer", "ComputeReport", "Journal", "compute_job", "make_app", "publish_bundle"]
