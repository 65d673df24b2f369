//! The OpenAPI document of the HTTP API, assembled from the handlers' `#[utoipa::path]`
//! annotations and the types they read and answer with. `airlock serve` builds it once at
//! start and serves it at `/openapi.json`; `airlock openapi` prints it, and
//! `docs/openapi.json` is that output, kept current by `tests/openapi.rs`.

use crate::api::{self, ErrorBody};
use airlock_gate::BakeOutcome;
use utoipa::openapi::path::OperationBuilder;
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HttpMethod, ObjectBuilder, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};

/// Bad input (`bad_request`), the message naming the problem: a body that is not valid JSON,
/// misses a field, has an unknown field or a bad value (`invalid request body: …`); a query
/// string with an unknown parameter or a value of the wrong type (`invalid query string: …`);
/// a value the provider refuses.
#[derive(ToResponse)]
pub struct BadRequest(pub ErrorBody);

/// No `Authorization: Bearer TOKEN` header, or the token is unknown or revoked
/// (`unauthenticated`).
#[derive(ToResponse)]
#[response(headers(("WWW-Authenticate" = String, description = "Always `Bearer`.")))]
pub struct Unauthorized(pub ErrorBody);

/// The caller may not do this (`forbidden`): agents on operator endpoints, operators
/// submitting actions, agents approving, anyone approving their own request, agents reading
/// another agent's actions or changes.
#[derive(ToResponse)]
pub struct Forbidden(pub ErrorBody);

/// The body is larger than `server.body_limit_bytes`, 64 KiB by default
/// (`payload_too_large`).
#[derive(ToResponse)]
pub struct PayloadTooLarge(pub ErrorBody);

/// The journal cannot be read or written (`unavailable`); the details are in the server's
/// log.
#[derive(ToResponse)]
pub struct Unavailable(pub ErrorBody);

/// A revert's `409`: the revert stopped (a `needs_attention` outcome), or the change could
/// not be reverted at all (an error).
#[derive(ToSchema)]
#[serde(untagged)]
pub enum RevertConflict {
    Stopped(BakeOutcome),
    Refused(ErrorBody),
}

const DESCRIPTION: &str = "The safety layer between AI agents and production infrastructure: \
the gate as an HTTP service (`airlock serve`). Agents submit actions; operators approve holds, \
revert changes, freeze agents, flip the kill switch, issue tokens and read the journal. Every \
`/v1` route needs `Authorization: Bearer TOKEN`, from `airlock token create`. Errors are JSON \
`{\"error\": {\"code\", \"message\"}}`. Request bodies and query strings are parsed strictly: \
unknown fields are a 400. Times are milliseconds since the Unix epoch. See docs/server.md.";

#[derive(OpenApi)]
#[openapi(
    info(title = "Airlock", description = DESCRIPTION,
        license(name = "Apache-2.0", identifier = "Apache-2.0")),
    servers((url = "http://127.0.0.1:7070", description = "The default listen address.")),
    paths(
        api::healthz, api::readyz, api::metrics, api::openapi,
        api::submit, api::report_ran, api::list_actions, api::get_action,
        api::list_approvals, api::resolve_approval,
        api::get_change, api::revert_change, api::change_timeline, api::undo,
        api::list_agents, api::get_agent, api::freeze, api::unfreeze,
        api::killswitch, api::killswitch_state,
        api::create_token, api::revoke_token,
        api::events, api::journal,
        api::list_tools, api::call_tool, api::whoami,
    ),
    components(responses(
        BadRequest, Unauthorized, Forbidden, PayloadTooLarge, Unavailable
    )),
    tags(
        (name = "health", description = "Probes, metrics and this document; no token."),
        (name = "actions", description = "Submitting and reading actions."),
        (name = "approvals", description = "Holds waiting for an operator."),
        (name = "changes", description = "Applied changes: read, timeline, revert, undo."),
        (name = "agents", description = "Agents' behaviour, freezing and unfreezing them."),
        (name = "killswitch", description = "The global kill switch."),
        (name = "tokens", description = "Identities and their bearer tokens."),
        (name = "journal", description = "The journal: paged reads and a live stream."),
        (name = "mcp", description = "The MCP gateway: tools/list and tools/call over \
            streamable HTTP at /mcp, and the same over plain HTTP (docs/mcp.md)."),
    ),
    modifiers(&Bearer, &McpTransport),
)]
struct ApiDoc;

/// The `bearer` scheme every `/v1` operation names.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "`Authorization: Bearer TOKEN` (the word `Bearer` in any case), a token from \
                 `airlock token create` or `POST /v1/tokens`. Agent tokens submit actions; \
                 operator tokens use every other `/v1` route.",
            ))
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// `/mcp` is the MCP SDK's streamable HTTP transport mounted beside the API, not an axum
/// handler, so its operation is written here.
struct McpTransport;

impl Modify for McpTransport {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let message = ContentBuilder::new()
            .schema(Some(
                ObjectBuilder::new().description(Some("A JSON-RPC 2.0 message.")),
            ))
            .build();
        let operation = OperationBuilder::new()
            .tag("mcp")
            .operation_id(Some("mcp"))
            .summary(Some("MCP over streamable HTTP"))
            .description(Some(
                "The MCP gateway (JSON-RPC 2.0, MCP streamable HTTP transport): `initialize`, \
                 `tools/list`, `tools/call`; see docs/mcp.md. Served when `mcp.enabled`. A \
                 valid bearer token is required before any MCP message is read; a body that is \
                 not a JSON-RPC message is answered `400` with a JSON-RPC error (`-32700` or \
                 `-32600`). `GET` and `DELETE` serve the transport's stream and session end.",
            ))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", message)
                    .required(Some(utoipa::openapi::Required::True))
                    .build(),
            ))
            .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
            .response(
                "200",
                ResponseBuilder::new().description(
                    "A JSON-RPC answer, as JSON or as an SSE stream (`text/event-stream`).",
                ),
            )
            .response(
                "202",
                ResponseBuilder::new().description("A notification or response was accepted."),
            )
            .response(
                "400",
                ResponseBuilder::new().description("Not a JSON-RPC message: a JSON-RPC error."),
            )
            .response(
                "401",
                utoipa::openapi::Ref::from_response_name("Unauthorized"),
            );
        doc.paths
            .add_path_operation("/mcp", vec![HttpMethod::Post], operation.build());
    }
}

/// The OpenAPI document of every route `airlock serve` answers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as pretty JSON with a final newline: what `docs/openapi.json` holds.
pub fn json() -> Result<String, serde_json::Error> {
    let mut text = openapi().to_pretty_json()?;
    text.push('\n');
    Ok(text)
}
