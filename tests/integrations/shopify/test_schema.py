"""Every GraphQL document Orderline sends is valid against Shopify's own Admin schema (2026-07), uses no
deprecated field, and stays under Shopify's 1,000-point limit for a single query."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from graphql import GraphQLSchema, build_client_schema, parse, validate
from graphql.language import FragmentDefinitionNode, OperationDefinitionNode
from graphql.validation import NoDeprecatedCustomRule

from integrations.shopify import queries
from integrations.shopify.client import DEFAULT_API_VERSION
from integrations.shopify.fake import estimate_cost
from integrations.shopify.topics import COMPLIANCE_TOPICS, TOPIC_HANDLERS

SCHEMA_FILE = Path(__file__).parent / "schema" / "admin_2026-07.json.gz"
MAX_QUERY_COST = 1000


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    with gzip.open(SCHEMA_FILE) as file:
        introspection = json.load(file)
    built = build_client_schema(introspection["data"])
    # Shopify's published schema trips graphql-core's own schema checks on a few deprecations; the
    # documents are what is under test, so those checks are skipped.
    built._validation_errors = []
    return built


def test_the_schema_file_is_the_api_version_orderline_asks_for() -> None:
    assert SCHEMA_FILE.name == f"admin_{DEFAULT_API_VERSION}.json.gz"


@pytest.mark.parametrize("name", sorted(queries.ALL_DOCUMENTS))
def test_document_is_valid_against_shopifys_schema(schema: GraphQLSchema, name: str) -> None:
    errors = validate(schema, parse(queries.ALL_DOCUMENTS[name]))
    assert [e.message for e in errors] == []


@pytest.mark.parametrize("name", sorted(queries.ALL_DOCUMENTS))
def test_document_uses_no_deprecated_field(schema: GraphQLSchema, name: str) -> None:
    errors = validate(schema, parse(queries.ALL_DOCUMENTS[name]), [NoDeprecatedCustomRule])
    assert [e.message for e in errors] == []


@pytest.mark.parametrize("name", sorted(queries.ALL_DOCUMENTS))
def test_document_costs_less_than_shopifys_single_query_limit(name: str) -> None:
    document = parse(queries.ALL_DOCUMENTS[name])
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    [operation] = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    variables = {"first": queries.CHANGED_ORDERS_PAGE}
    assert 0 < estimate_cost(operation.selection_set, fragments, variables) < MAX_QUERY_COST


def test_a_document_with_a_wrong_field_is_caught(schema: GraphQLSchema) -> None:
    broken = queries.FETCH_ORDER.replace("displayFinancialStatus", "financialStatus")
    assert validate(schema, parse(broken))


def test_every_subscribable_topic_is_a_webhook_subscription_topic(schema: GraphQLSchema) -> None:
    enum = schema.get_type("WebhookSubscriptionTopic")
    names = set(getattr(enum, "values", {}))
    wanted = {queries.webhook_topic_enum(t) for t in TOPIC_HANDLERS if t not in COMPLIANCE_TOPICS}
    assert wanted <= names, wanted - names
