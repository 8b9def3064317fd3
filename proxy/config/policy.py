"""Policy: the engine, the policy directory, reload and shadow evaluation."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from proxy.config.base import Section


class PolicyConfig(Section):
    engine: Literal["rego", "opa", "off"] = "rego"
    """`rego` (in-process), `opa` (a remote OPA data API) or `off` (no policy stage: every call that passed auth
    goes on)."""
    directory: str = "policies"
    """The policy directory (relative to the working directory): `*.rego`, `data.json`/`data.yaml`, optional
    `.manifest`."""
    reload: bool = True
    """Poll the directory and hot-swap a bundle that compiles."""
    reload_interval_seconds: float = Field(default=1.0, gt=0)
    """Poll interval (file names, sizes, modification times)."""
    on_load_error: Literal["exit", "deny"] = "exit"
    """At startup, a policy that does not load stops the sidecar (exit 2); `deny` starts anyway, denies every call
    and reports unready until a reload succeeds."""
    shadow_directory: str | None = None
    """A candidate policy evaluated beside the active one: disagreements (allow or obligations) are logged
    (`policy.shadow_disagreement`), counted on `/readyz` and put in the audit record (`policy_shadow`), never
    enforced."""
    opa_url: str | None = None
    """`engine: opa`: the OPA server's base URL, e.g. `http://127.0.0.1:8181`; the sidecar POSTs `{"input": ...}` to
    `/v1/data/mcp/decision` and `/v1/data/mcp/visible` (never `argument_names`: OPA gets the whole arguments)."""
    opa_timeout_seconds: float = Field(default=0.5, gt=0)
    """`engine: opa`: a slower query, an HTTP error or an unreachable OPA denies."""

    @field_validator("engine", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        return "off" if value is False else value  # YAML reads a bare `off` as false

    @model_validator(mode="after")
    def _opa_needs_url(self) -> PolicyConfig:
        if self.engine == "opa" and not (self.opa_url or "").startswith(("http://", "https://")):
            raise ValueError("policy.opa_url (an http(s) URL) is required when policy.engine is 'opa'")
        return self
