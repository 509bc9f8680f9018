"""HTTP routes of notify: contact points, policies, the outbox. Validation and HTTP only."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from hazardloop.notify import service
from hazardloop.notify.models import (
    ChannelCreate,
    ChannelRead,
    ChannelUpdate,
    OutboxRead,
    OutboxStatus,
    PolicyCreate,
    PolicyRead,
    PolicyUpdate,
    TestResult,
)
from hazardloop.web.deps import Actor, Db

router = APIRouter(prefix="/api/v1/notify", tags=["notify"])


@router.get("/channels", response_model=list[ChannelRead])
def list_channels(actor: Actor, db: Db) -> list[ChannelRead]:
    return [service.channel_read(c) for c in service.list_channels(db, actor=actor)]


@router.post("/channels", response_model=ChannelRead, status_code=201)
def create_channel(body: ChannelCreate, actor: Actor, db: Db) -> ChannelRead:
    return service.channel_read(service.create_channel(db, actor=actor, data=body))


@router.get("/channels/{channel_id}", response_model=ChannelRead)
def get_channel(channel_id: int, actor: Actor, db: Db) -> ChannelRead:
    return service.channel_read(service.get_channel(db, actor=actor, channel_id=channel_id))


@router.patch("/channels/{channel_id}", response_model=ChannelRead)
def update_channel(channel_id: int, body: ChannelUpdate, actor: Actor, db: Db) -> ChannelRead:
    return service.channel_read(service.update_channel(db, actor=actor, channel_id=channel_id, data=body))


@router.delete("/channels/{channel_id}", status_code=204)
def delete_channel(channel_id: int, actor: Actor, db: Db) -> None:
    service.delete_channel(db, actor=actor, channel_id=channel_id)


@router.post("/channels/{channel_id}/test", response_model=TestResult)
def test_channel(channel_id: int, request: Request, actor: Actor, db: Db) -> TestResult:
    transport = getattr(request.app.state, "notify_transport", None)
    entry = service.send_test(db, actor=actor, channel_id=channel_id, transport=transport)
    return TestResult(outbox_id=entry.id, status=entry.status, detail=entry.last_error)


@router.get("/policies", response_model=list[PolicyRead])
def list_policies(actor: Actor, db: Db) -> list:
    return service.list_policies(db, actor=actor)


@router.post("/policies", response_model=PolicyRead, status_code=201)
def create_policy(body: PolicyCreate, actor: Actor, db: Db):  # noqa: ANN201 - response_model says it
    return service.create_policy(db, actor=actor, data=body)


@router.get("/policies/{policy_id}", response_model=PolicyRead)
def get_policy(policy_id: int, actor: Actor, db: Db):  # noqa: ANN201
    return service.get_policy(db, actor=actor, policy_id=policy_id)


@router.patch("/policies/{policy_id}", response_model=PolicyRead)
def update_policy(policy_id: int, body: PolicyUpdate, actor: Actor, db: Db):  # noqa: ANN201
    return service.update_policy(db, actor=actor, policy_id=policy_id, data=body)


@router.delete("/policies/{policy_id}", status_code=204)
def delete_policy(policy_id: int, actor: Actor, db: Db) -> None:
    service.delete_policy(db, actor=actor, policy_id=policy_id)


@router.get("/outbox", response_model=list[OutboxRead])
def list_outbox(actor: Actor, db: Db, status: OutboxStatus | None = None,
                limit: int = Query(default=100, ge=1, le=1000), before_id: int | None = None) -> list:
    return service.list_outbox(db, actor=actor, status=status, limit=limit, before_id=before_id)


@router.post("/outbox/{entry_id}/retry", response_model=OutboxRead)
def retry_entry(entry_id: int, actor: Actor, db: Db):  # noqa: ANN201
    return service.retry_entry(db, actor=actor, entry_id=entry_id)
