"""The verifiable log over HTTP: checkpoint, proofs and public key (CONTRACT section 3).

Hashes travel as standard base64. A verifier needs nothing else from this service: it checks
the checkpoint's signature with the public key, then the proofs against the checkpoint's root.
"""

# No `from __future__ import annotations`: FastAPI reads the parameter annotations of these
# routes at runtime, and they name objects local to routes().

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.responses import PlainTextResponse, Response

from trailkeeper.api.auth import Caller
from trailkeeper.api.encoding import JsonResponse
from trailkeeper.api.schemas import (
    AUTHENTICATED,
    ConsistencyProof,
    InclusionProof,
    error_responses,
    text_response,
)
from trailkeeper.api.service import Service


def _tree_size_of(note: str) -> dict[str, Any]:
    # Line 2 of a checkpoint body is its tree size (C2SP tlog-checkpoint).
    lines = note.split("\n")
    return {"tree_size": int(lines[1])} if len(lines) > 1 and lines[1].isdigit() else {}


def routes(service: Service) -> APIRouter:
    router = APIRouter(tags=["proofs"])
    log = service.log
    Reader = Annotated[Caller, Depends(service.reader)]

    @router.get(
        "/v1/checkpoint",
        response_class=PlainTextResponse,
        responses={
            **text_response("A C2SP signed note (tlog-checkpoint)", "text/plain"),
            **error_responses(*AUTHENTICATED),
        },
        summary="The latest signed checkpoint",
    )
    async def checkpoint(caller: Reader) -> Response:
        """The latest checkpoint of the tenant's log, covering every event committed so far:
        origin, tree size and root hash, signed with the tenant's Ed25519 key."""
        note = await service.audited_read(
            caller,
            "GET /v1/checkpoint",
            {},
            lambda: log.checkpoint(caller.tenant),
            lambda _: 1,
            extra=_tree_size_of,
        )
        return PlainTextResponse(note)

    @router.get(
        "/v1/proofs/inclusion",
        response_model=InclusionProof,
        responses=error_responses(*AUTHENTICATED),
        summary="Inclusion proof",
    )
    async def inclusion_proof(
        seq: Annotated[int, Query(ge=0, description="The event's seq (its leaf index)")],
        tree_size: Annotated[int, Query(ge=1, description="Size of the tree to prove against")],
        caller: Reader,
    ) -> Response:
        """RFC 9162 section 2.1.3 proof that the event at `seq` is in the tree of `tree_size`."""
        proof = await service.audited_read(
            caller,
            "GET /v1/proofs/inclusion",
            {"seq": seq, "tree_size": tree_size},
            lambda: log.inclusion_proof(caller.tenant, seq, tree_size),
            lambda _: 1,
        )
        return JsonResponse(proof)

    @router.get(
        "/v1/proofs/consistency",
        response_model=ConsistencyProof,
        responses=error_responses(*AUTHENTICATED),
        summary="Consistency proof",
    )
    async def consistency_proof(
        from_size: Annotated[int, Query(alias="from", ge=1, description="The older tree size")],
        to: Annotated[int, Query(ge=1, description="The newer tree size")],
        caller: Reader,
    ) -> Response:
        """RFC 9162 section 2.1.4 proof that the tree of size `from` is a prefix of size `to`."""
        proof = await service.audited_read(
            caller,
            "GET /v1/proofs/consistency",
            {"from": from_size, "to": to},
            lambda: log.consistency_proof(caller.tenant, from_size, to),
            lambda _: 1,
        )
        return JsonResponse(proof)

    @router.get(
        "/v1/public-key",
        response_class=PlainTextResponse,
        responses={
            **text_response("A C2SP signed-note verifier key", "text/plain"),
            **error_responses(*AUTHENTICATED),
        },
        summary="The tenant's verifier key",
    )
    async def public_key(caller: Reader) -> Response:
        """The verifier key of the tenant's checkpoints: `<name>+<hash>+<base64 key>`."""
        key = await service.audited_read(
            caller, "GET /v1/public-key", {}, lambda: log.public_key(caller.tenant), lambda _: 1
        )
        return PlainTextResponse(key + "\n")

    return router
