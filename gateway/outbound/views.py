"""``POST /outbound/{partner_id}/{document_type}``: the ERP sends one canonical document.

202 with the message id once the X12 is generated, archived and queued for the partner's
transport (or, for a batching partner, with the document id until its batch goes out). 422
lists every field at fault; the same ``Idempotency-Key`` and body answer the same ids again,
a different body with a used key is a 409.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Request, Response

from gateway.api.app import secret_box
from gateway.api.auth import Principal, require_roles
from gateway.api.errors import ApiError
from gateway.deliveries.service import RetryPolicy
from gateway.logging import current_correlation_id
from gateway.outbound import errors
from gateway.outbound.routing import NoOutboundTransport
from gateway.outbound.service import Submitted, submit_document
from gateway.processing.publisher import DELIVER, SEND_MESSAGE, CeleryPublisher, Publisher
from gateway.processing.tuning import PipelineTuning
from gateway.settings import Settings
from gateway.store.enums import ApiKeyRole

router = APIRouter(prefix="/outbound", tags=["outbound"])
Sender = Annotated[Principal, Depends(require_roles(ApiKeyRole.ERP))]
MAX_IDEMPOTENCY_KEY = 200


def _publisher(request: Request) -> Publisher:
    publisher: Publisher | None = getattr(request.app.state, "publisher", None)
    if publisher is None:
        publisher = CeleryPublisher(request.app.state.settings)
        request.app.state.publisher = publisher
    return publisher


def retry_policy(settings: Settings, tuning: PipelineTuning) -> RetryPolicy:
    """The webhook retry policy for deliveries created while answering a request."""
    window = (
        tuning.webhook_retry_seconds
        if tuning.webhook_retry_seconds is not None
        else (settings.webhook_retry_hours * 3600.0)
    )
    return RetryPolicy(
        window=timedelta(seconds=window),
        backoff_seconds=tuning.webhook_backoff_seconds,
        backoff_max_seconds=tuning.webhook_backoff_max_seconds,
        timeout_seconds=tuning.webhook_timeout_seconds,
        lease=timedelta(seconds=tuning.task_lease_seconds),
    )


def _submit(
    request: Request, principal: Principal, partner_id: str, document_type: str, data: Any, key: str | None
) -> Submitted:
    settings: Settings = request.app.state.settings
    tuning = PipelineTuning()
    for attempt in range(2):
        try:
            with request.app.state.db.unit_of_work() as session:
                return submit_document(
                    session,
                    blobs=request.app.state.blobs,
                    box=secret_box(request),
                    partner_id=partner_id,
                    document_type=document_type,
                    data=data,
                    idempotency_key=key,
                    actor=principal.actor,
                    correlation_id=current_correlation_id() or "",
                    lease=timedelta(seconds=tuning.task_lease_seconds),
                    policy=retry_policy(settings, tuning),
                )
        except errors.IdempotencyRace:
            if attempt:
                raise
    raise AssertionError("unreachable")


@router.post("/{partner_id}/{document_type}", status_code=202)
def post_outbound(
    request: Request,
    response: Response,
    partner_id: str,
    document_type: str,
    principal: Sender,
    data: Annotated[Any, Body(description="the canonical document (GET /schemas/{document_type})")],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> dict[str, Any]:
    """Validate, generate and queue one canonical document for the partner."""
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        raise ApiError(
            422,
            "validation_error",
            "the request is not valid",
            [{"field": "Idempotency-Key", "message": f"1 to {MAX_IDEMPOTENCY_KEY} characters"}],
        )
    try:
        submitted = _submit(request, principal, partner_id, document_type, data, idempotency_key)
    except errors.UnknownPartner as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    except errors.PartnerSuspended as exc:
        raise ApiError(403, "forbidden", str(exc)) from exc
    except errors.DocumentInvalid as exc:
        raise ApiError(
            422, "validation_error", "the document is not valid for this partner", exc.problems
        ) from exc
    except NoOutboundTransport as exc:
        raise ApiError(
            422, "validation_error", str(exc), [{"field": "transports", "message": str(exc)}]
        ) from exc
    except (errors.IdempotencyConflict, errors.IdempotencyRace) as exc:
        raise ApiError(
            409, "conflict", str(exc), [{"field": "Idempotency-Key", "message": str(exc)}]
        ) from exc
    publisher = _publisher(request)
    if submitted.generated is not None:
        publisher.publish(
            SEND_MESSAGE,
            {"message_id": str(submitted.generated.message_id), "outbox_id": submitted.generated.outbox_id},
        )
    if submitted.delivery_ids:
        publisher.publish(DELIVER, {"delivery_ids": [str(i) for i in submitted.delivery_ids]})
    if submitted.repeated:
        response.headers["Idempotent-Replayed"] = "true"
    return submitted.to_dict()
