"""The CDK app: ``python -m infra.app`` (what ``cdk.json`` runs and ``make synth`` calls).

It reads :class:`~infra.settings.DeploySettings`, stages the Lambda code
(:mod:`infra.staging`), adds cdk-nag's AWS Solutions checks as a policy
validation plugin and synthesizes the cloud assembly into ``CDK_OUTDIR`` (set
by the cdk CLI) or ``cdk.out``. An unacknowledged cdk-nag error fails the
synthesis; every acknowledgment in infra/stack.py carries its reason.

No AWS credentials are needed: the stack is environment-agnostic and
synthesizing makes no AWS calls.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# jsii runs the CDK's JavaScript on the machine's Node.js and prints a large
# banner for versions it no longer tests; the synthesized template does not
# depend on it. Must be set before aws_cdk is imported.
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20,22")

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.layer import placeholder_layer
from infra.settings import DeploySettings, SettingsError
from infra.stack import PlanPolicyStack
from infra.staging import ROOT, stage_code

__all__ = ["build_app", "main"]


def build_app(
    *,
    outdir: Path,
    build_dir: Path,
    context: dict[str, object] | None = None,
    env: dict[str, str] | None = None,
) -> tuple[cdk.App, PlanPolicyStack]:
    """The app and its stack, with cdk-nag attached; call ``app.synth()`` to write it.

    ``build_dir`` receives the staged code (and the placeholder layer when
    synthesizing with ``synth_only``); ``context`` overrides CDK context values.
    """
    app = cdk.App(
        outdir=str(outdir),
        context={"aws:cdk:enable-asset-metadata": True, **(context or {})},
    )
    settings = DeploySettings.resolve(app.node.try_get_context, env)
    layer_dir = settings.deps_dir if settings.deps_dir.is_absolute() else ROOT / settings.deps_dir
    if not (layer_dir / "python").is_dir():
        if not settings.synth_only:
            raise SettingsError(
                f"dependency layer not built at `{layer_dir}`: run `make lambda-deps` "
                "(or synthesize with PLANPOLICY_SYNTH_ONLY=1 to only inspect the template)"
            )
        layer_dir = placeholder_layer(build_dir / "placeholder-layer")
    code_dir = stage_code(build_dir / "lambda-code")
    stack = PlanPolicyStack(
        app,
        settings.stack_name,
        settings=settings,
        code_dir=code_dir,
        layer_dir=layer_dir,
        description="planpolicy: plan tables, scheduled orchestrator, Plans API (infra/stack.py)",
    )
    # Acknowledged rules are also written into the template's Metadata (with
    # their reasons), so the audit trail travels with the template.
    cdk.Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True)
    )
    return app, stack


def main() -> int:
    """Synthesize into ``$CDK_OUTDIR`` or ``cdk.out``; 2 on a settings error."""
    outdir = Path(os.environ.get("CDK_OUTDIR") or ROOT / "cdk.out")
    try:
        app, stack = build_app(outdir=outdir, build_dir=ROOT / "build" / "cdk")
        app.synth()
    except SettingsError as exc:
        print(f"infra: error: {exc}", file=sys.stderr)
        return 2
    print(f"synthesized {outdir / stack.template_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
