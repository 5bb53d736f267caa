"""AWS deployment of planpolicy as code (AWS CDK, Python).

``infra.app`` is the CDK app (``cdk.json`` runs it); ``infra.stack`` builds the
one stack: the plan tables, the scheduled orchestrator, the Plans API and its
alarms. ``infra.settings`` reads the deployment settings, ``infra.tables`` turns
the DynamoDB store adapter's table definitions into CDK tables,
``infra.staging`` lays out the Lambda code asset and ``infra.layer`` builds the
dependency layer. See docs/deploy.md.
"""
