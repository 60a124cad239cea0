"""moto's server for the least-privilege test, with one adaptation.

    python moto_server.py PORT

moto checks each request's SigV4 signature by signing again the body it parsed; for SNS's
query protocol its re-encoding of the form differs from what the AWS SDK for Rust sent, so
every SNS call fails as SignatureDoesNotMatch. Signatures are AWS's to verify and not what the
test is about: for query-protocol requests (form bodies) the signature check is skipped. The
access key must still belong to a user, and every action is still authorized against that
user's policies by moto's evaluator.
"""

import sys

from moto.iam.access_control import IAMRequest
from moto.server import main

signature_checked = IAMRequest.check_signature


def check_signature(self):
    content_type = next((v for k, v in self._headers.items() if k.lower() == "content-type"), "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        return
    signature_checked(self)


IAMRequest.check_signature = check_signature

if __name__ == "__main__":
    main(["-H", "127.0.0.1", "-p", sys.argv[1]])
