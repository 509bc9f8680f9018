"""Tables and schemas of the plant model."""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import JSON, Boolean, Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from hazardloop.db import Base

CODE_PATTERN = r"^[A-Za-z0-9_.\-/]+$"


class RiskGrade(enum.StrEnum):
    """The four risk grades of 安委办〔2016〕11号 and their map colours."""

    RED = "red"  # 重大风险
    ORANGE = "orange"  # 较大风险
    YELLOW = "yellow"  # 一般风险
    BLUE = "blue"  # 低风险


class Enterprise(Base):
    __tablename__ = "enterprises"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name_zh: Mapped[str] = mapped_column(String(128))
    name_en: Mapped[str] = mapped_column(String(128), default="")


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id", ondelete="RESTRICT"), index=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name_zh: Mapped[str] = mapped_column(String(128))
    name_en: Mapped[str] = mapped_column(String(128), default="")
    plan_width: Mapped[float] = mapped_column(Float, default=1000.0)
    plan_height: Mapped[float] = mapped_column(Float, default=600.0)


class Area(Base):
    __tablename__ = "areas"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"), index=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name_zh: Mapped[str] = mapped_column(String(128))
    name_en: Mapped[str] = mapped_column(String(128), default="")
    risk_grade: Mapped[str | None] = mapped_column(String(16))
    polygon: Mapped[list[list[float]]] = mapped_column(JSON, default=list)


class Equipment(Base):
    __tablename__ = "equipment"

    id: Mapped[int] = mapped_column(primary_key=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id", ondelete="RESTRICT"), index=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name_zh: Mapped[str] = mapped_column(String(128))
    name_en: Mapped[str] = mapped_column(String(128), default="")
    kind: Mapped[str] = mapped_column(String(32), default="other")


class Sensor(Base):
    """A measuring point. Area is stored even with equipment, because gas detectors often hang on no equipment."""

    __tablename__ = "sensors"

    id: Mapped[int] = mapped_column(primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    kind: Mapped[str] = mapped_column(String(32))
    unit: Mapped[str] = mapped_column(String(16))
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id", ondelete="RESTRICT"), index=True)
    equipment_id: Mapped[int | None] = mapped_column(ForeignKey("equipment.id", ondelete="RESTRICT"), index=True)
    range_min: Mapped[float] = mapped_column(Float)
    range_max: Mapped[float] = mapped_column(Float)
    ll: Mapped[float | None] = mapped_column(Float)
    l: Mapped[float | None] = mapped_column(Float)  # noqa: E741 - the instrument engineers' name
    h: Mapped[float | None] = mapped_column(Float)
    hh: Mapped[float | None] = mapped_column(Float)
    deadband: Mapped[float] = mapped_column(Float, default=0.0)
    on_delay_s: Mapped[float] = mapped_column(Float, default=0.0)
    off_delay_s: Mapped[float] = mapped_column(Float, default=0.0)
    sample_period_s: Mapped[float | None] = mapped_column(Float)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


# ---------------------------------------------------------------- schemas


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SiteCreate(_Strict):
    code: str = Field(min_length=1, max_length=32, pattern=CODE_PATTERN)
    name_zh: str = Field(min_length=1, max_length=128)
    name_en: str = Field(default="", max_length=128)
    plan_width: float = Field(default=1000.0, gt=0, le=1e6)
    plan_height: float = Field(default=600.0, gt=0, le=1e6)


class SiteUpdate(_Strict):
    name_zh: str | None = Field(default=None, min_length=1, max_length=128)
    name_en: str | None = Field(default=None, max_length=128)
    plan_width: float | None = Field(default=None, gt=0, le=1e6)
    plan_height: float | None = Field(default=None, gt=0, le=1e6)


class SiteRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    code: str
    name_zh: str
    name_en: str
    plan_width: float
    plan_height: float


def _check_polygon(points: list[list[float]] | None) -> list[list[float]] | None:
    if points is None or points == []:
        return points
    if len(points) < 3:
        raise ValueError("a polygon needs at least 3 points")
    for point in points:
        if len(point) != 2:
            raise ValueError("each polygon point is [x, y]")
    return points


class AreaCreate(_Strict):
    site_id: int
    code: str = Field(min_length=1, max_length=32, pattern=CODE_PATTERN)
    name_zh: str = Field(min_length=1, max_length=128)
    name_en: str = Field(default="", max_length=128)
    risk_grade: RiskGrade | None = None
    polygon: list[list[float]] = []

    _polygon = field_validator("polygon")(_check_polygon)


class AreaUpdate(_Strict):
    name_zh: str | None = Field(default=None, min_length=1, max_length=128)
    name_en: str | None = Field(default=None, max_length=128)
    risk_grade: RiskGrade | None = None
    polygon: list[list[float]] | None = None

    _polygon = field_validator("polygon")(_check_polygon)


class AreaRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    site_id: int
    code: str
    name_zh: str
    name_en: str
    risk_grade: RiskGrade | None
    polygon: list[list[float]]


class EquipmentCreate(_Strict):
    area_id: int
    code: str = Field(min_length=1, max_length=64, pattern=CODE_PATTERN)
    name_zh: str = Field(min_length=1, max_length=128)
    name_en: str = Field(default="", max_length=128)
    kind: str = Field(default="other", max_length=32)


class EquipmentUpdate(_Strict):
    area_id: int | None = None
    name_zh: str | None = Field(default=None, min_length=1, max_length=128)
    name_en: str | None = Field(default=None, max_length=128)
    kind: str | None = Field(default=None, max_length=32)


class EquipmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    area_id: int
    code: str
    name_zh: str
    name_en: str
    kind: str


class SensorFields(_Strict):
    """Every sensor field but its placement; shared by the API and the tag-list import."""

    name: str = Field(default="", max_length=128)
    kind: str = Field(min_length=1, max_length=32)
    unit: str = Field(min_length=1, max_length=16)
    range_min: float = Field(allow_inf_nan=False)
    range_max: float = Field(allow_inf_nan=False)
    ll: float | None = Field(default=None, allow_inf_nan=False)
    l: float | None = Field(default=None, allow_inf_nan=False)  # noqa: E741
    h: float | None = Field(default=None, allow_inf_nan=False)
    hh: float | None = Field(default=None, allow_inf_nan=False)
    deadband: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    on_delay_s: float = Field(default=0.0, ge=0, le=86400, allow_inf_nan=False)
    off_delay_s: float = Field(default=0.0, ge=0, le=86400, allow_inf_nan=False)
    sample_period_s: float | None = Field(default=None, gt=0, le=86400, allow_inf_nan=False)
    enabled: bool = True


class SensorCreate(SensorFields):
    tag: str = Field(min_length=1, max_length=64, pattern=CODE_PATTERN)
    area_id: int
    equipment_id: int | None = None


class SensorUpdate(_Strict):
    name: str | None = Field(default=None, max_length=128)
    kind: str | None = Field(default=None, max_length=32)
    unit: str | None = Field(default=None, max_length=16)
    area_id: int | None = None
    equipment_id: int | None = None
    range_min: float | None = Field(default=None, allow_inf_nan=False)
    range_max: float | None = Field(default=None, allow_inf_nan=False)
    ll: float | None = Field(default=None, allow_inf_nan=False)
    l: float | None = Field(default=None, allow_inf_nan=False)  # noqa: E741
    h: float | None = Field(default=None, allow_inf_nan=False)
    hh: float | None = Field(default=None, allow_inf_nan=False)
    deadband: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    on_delay_s: float | None = Field(default=None, ge=0, le=86400, allow_inf_nan=False)
    off_delay_s: float | None = Field(default=None, ge=0, le=86400, allow_inf_nan=False)
    sample_period_s: float | None = Field(default=None, gt=0, le=86400, allow_inf_nan=False)
    enabled: bool | None = None


class SensorRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    tag: str
    name: str
    kind: str
    unit: str
    area_id: int
    equipment_id: int | None
    range_min: float
    range_max: float
    ll: float | None
    l: float | None  # noqa: E741
    h: float | None
    hh: float | None
    deadband: float
    on_delay_s: float
    off_delay_s: float
    sample_period_s: float | None
    enabled: bool


class ImportReport(BaseModel):
    created: int
    updated: int
    tags: list[str]
