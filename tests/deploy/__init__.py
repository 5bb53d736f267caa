"""Tests of the AWS deployment (infra/): the synthesized template and the handlers it runs."""
