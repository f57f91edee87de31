"""``POST /outbound/{partner_id}/{document_type}``: the ERP sends one canonical document;
``…/batch`` sends many at once (each its own interchange, all accepted or none).

202 with the message id once the X12 is generated, archived and queued for the partner's
transport (or, for a batching partner, with the document id until its batch goes out). 422
lists every field at fault (``[i].field`` in a batch); the same ``Idempotency-Key`` and body
answer the same ids again, a different body with a used key is a 409.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.app import secret_box
from gateway.api.auth import Principal, require_roles
from gateway.api.errors import ApiError
from gateway.deliveries.service import RetryPolicy
from gateway.logging import current_correlation_id
from gateway.outbound import errors
from gateway.outbound.routing import NoOutboundTransport
from gateway.outbound.service import Submission, Submitted, submit_documents
from gateway.processing.publisher import DELIVER, SEND_MESSAGE, CeleryPublisher, Publisher
from gateway.processing.tuning import PipelineTuning, current_tuning
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
    request: Request,
    principal: Principal,
    partner_id: str,
    document_type: str,
    submissions: list[Submission],
    *,
    batch: bool,
) -> list[Submitted]:
    settings: Settings = request.app.state.settings
    tuning = current_tuning()
    for attempt in range(2):
        try:
            with request.app.state.db.unit_of_work() as session:
                return submit_documents(
                    session,
                    blobs=request.app.state.blobs,
                    box=secret_box(request),
                    partner_id=partner_id,
                    document_type=document_type,
                    submissions=submissions,
                    actor=principal.actor,
                    lease=timedelta(seconds=tuning.task_lease_seconds),
                    policy=retry_policy(settings, tuning),
                    prefix_fields=batch,
                )
        except errors.IdempotencyRace:
            if attempt:
                raise
    raise AssertionError("unreachable")


def _submitted(
    request: Request,
    principal: Principal,
    partner_id: str,
    document_type: str,
    submissions: list[Submission],
    *,
    batch: bool = False,
) -> list[Submitted]:
    """Submit, answer errors as API errors, then ring the send and delivery doorbells."""
    try:
        submitted = _submit(request, principal, partner_id, document_type, submissions, batch=batch)
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
    generated = [item.generated for item in submitted if item.generated is not None]
    if len(generated) == 1:
        publisher.publish(
            SEND_MESSAGE, {"message_id": str(generated[0].message_id), "outbox_id": generated[0].outbox_id}
        )
    elif generated:  # one task sends them all and records their receipts in one transaction
        publisher.publish(SEND_MESSAGE, {"message_ids": [str(item.message_id) for item in generated]})
    deliveries = [str(i) for item in submitted for i in item.delivery_ids]
    if deliveries:
        publisher.publish(DELIVER, {"delivery_ids": deliveries})
    return submitted


def _check_key(field_name: str, key: str | None) -> None:
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise ApiError(
            422,
            "validation_error",
            "the request is not valid",
            [{"field": field_name, "message": f"1 to {MAX_IDEMPOTENCY_KEY} characters"}],
        )


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
    _check_key("Idempotency-Key", idempotency_key)
    submission = Submission(data, idempotency_key, current_correlation_id() or "")
    submitted = _submitted(request, principal, partner_id, document_type, [submission])[0]
    if submitted.repeated:
        response.headers["Idempotent-Replayed"] = "true"
    return submitted.to_dict()


class BatchItem(BaseModel):
    """One document of a batch and its idempotency key."""

    model_config = ConfigDict(extra="forbid")

    idempotency_key: str | None = None
    document: dict[str, Any]


class BatchBody(BaseModel):
    """``POST …/batch``: the documents, in the order their answers come back."""

    model_config = ConfigDict(extra="forbid")

    documents: list[BatchItem] = Field(min_length=1)


@router.post("/{partner_id}/{document_type}/batch", status_code=202)
def post_outbound_batch(
    request: Request, partner_id: str, document_type: str, principal: Sender, body: BatchBody
) -> dict[str, Any]:
    """Validate, generate and queue many documents of one type, all or none, each its own interchange."""
    limit = request.app.state.settings.max_outbound_batch
    if len(body.documents) > limit:
        raise ApiError(
            413, "payload_too_large", f"a batch carries at most {limit} documents",
            [{"field": "documents", "message": f"{len(body.documents)} documents; at most {limit}"}],
        )
    for index, item in enumerate(body.documents):
        _check_key(f"documents[{index}].idempotency_key", item.idempotency_key)
    correlation_id = current_correlation_id() or ""  # the request's, shared by its documents
    submissions = [Submission(item.document, item.idempotency_key, correlation_id) for item in body.documents]
    submitted = _submitted(request, principal, partner_id, document_type, submissions, batch=True)
    return {"documents": [item.to_dict() | {"repeated": item.repeated} for item in submitted]}
