//! The dashboard: server-rendered pages at `/` for operators, over the same front door and
//! gate as the API (which stays under `/v1`). Sign-in trades an operator's token for a
//! session cookie (HttpOnly, SameSite=Strict); every form that changes something carries
//! the session's CSRF token, and a request from another site is refused before it is read.
//! Agents' tokens never sign in. The assets (one stylesheet, one small script for the live
//! views) are embedded in the binary; every page works without the script, live updates
//! aside.
//!
//! Pages read the journal a page at a time (newest first, by `seq`), never the whole of
//! it; the pending holds and agents' state come from the gate's memory.

mod chart;
mod pages;
mod session;

pub use session::{Session, Sessions};

use crate::state::AppState;
use airlock_gate::{GateError, PrincipalKind2};
use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};
use std::path::PathBuf;
use std::sync::Arc;

/// The session cookie's name.
pub const COOKIE: &str = "airlock_session";
/// The sign-in form's nonce cookie (login CSRF: a form posted from elsewhere lacks it).
const LOGIN_COOKIE: &str = "airlock_login";

/// The most action targets the feed remembers (it forgets them all past this).
const TARGETS: usize = 50_000;

/// The dashboard's settings and sessions.
pub struct Dashboard {
    pub sessions: Sessions,
    /// Where `airlock prove --report` files are listed from, if anywhere.
    pub reports: Option<PathBuf>,
    /// Each action's `verb target`, read once from its request for the feed's rows.
    targets: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl Dashboard {
    pub fn new(session_ttl_ms: i64, reports: Option<PathBuf>) -> Self {
        Self {
            sessions: Sessions::new(session_ttl_ms),
            reports,
            targets: Default::default(),
        }
    }

    fn target(&self, action: &str) -> Option<String> {
        self.targets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(action)
            .cloned()
    }

    fn remember(&self, action: &str, target: &str) {
        let mut m = self
            .targets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if m.len() >= TARGETS {
            m.clear();
        }
        m.insert(action.to_string(), target.to_string());
    }
}

/// The dashboard's routes; empty when it is turned off.
pub fn routes(state: &AppState) -> Router<AppState> {
    if state.dashboard.is_none() {
        return Router::new();
    }
    use axum::routing::{get, post};
    Router::new()
        .route("/", get(pages::feed))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/live", get(pages::live))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
        .route("/approvals", get(pages::approvals))
        .route("/approvals/{id}", get(pages::approval).post(pages::resolve))
        .route("/actions/{id}", get(pages::action))
        .route("/changes", get(pages::changes))
        .route("/changes/{id}", get(pages::change))
        .route("/changes/{id}/revert", post(pages::revert))
        .route("/agents", get(pages::agents))
        .route("/agents/{name}", get(pages::agent))
        .route("/agents/{name}/freeze", post(pages::freeze))
        .route("/agents/{name}/unfreeze", post(pages::unfreeze))
        .route(
            "/agents/{name}/undo",
            get(pages::undo_preview).post(pages::undo),
        )
        .route(
            "/killswitch",
            get(pages::killswitch).post(pages::set_killswitch),
        )
        .route("/journal", get(pages::journal))
        .route("/journal/verify", post(pages::verify))
        .route("/reports", get(pages::reports))
        .route("/reports/{file}", get(pages::report))
}

/// A signed-in operator, from the session cookie. Without a live session a page answers
/// with a redirect to the sign-in form (and a fetch or stream with `401`).
pub struct Operator {
    pub name: String,
    pub kind: PrincipalKind2,
    pub csrf: String,
    pub session: String,
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        let Some(d) = &s.dashboard else {
            return Err(StatusCode::NOT_FOUND.into_response());
        };
        let now = s.gate.now();
        let found = cookie(&parts.headers, COOKIE)
            .and_then(|id| d.sessions.get(&id, now).map(|session| (id, session)));
        let signed_out = || {
            let wants_page = parts
                .headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/html"));
            if wants_page && parts.method == axum::http::Method::GET {
                let next = parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string();
                Redirect::to(&format!("/login?next={}", urlencode(&next))).into_response()
            } else {
                (StatusCode::UNAUTHORIZED, "sign in at /login").into_response()
            }
        };
        let Some((id, session)) = found else {
            return Err(signed_out());
        };
        // The token is checked again on every request: a revoked or re-keyed operator's
        // session ends at once.
        match s.door.authenticate(&session.token).await {
            Ok(p) if p.kind != PrincipalKind2::Agent => Ok(Operator {
                name: p.name,
                kind: p.kind,
                csrf: session.csrf,
                session: id,
            }),
            Ok(_) | Err(GateError::Unauthenticated) => {
                d.sessions.remove(&id);
                Err(signed_out())
            }
            Err(e) => Err(error_page(&e.to_string(), StatusCode::SERVICE_UNAVAILABLE)),
        }
    }
}

impl Operator {
    /// Refuses a mutating form unless it carries this session's CSRF token and comes from
    /// this site; nothing is read or changed before this passes.
    fn check(&self, headers: &HeaderMap, form_token: Option<&str>) -> Result<(), Refused> {
        cross_site(headers)?;
        match form_token {
            Some(t) if session::same(t, &self.csrf) => Ok(()),
            _ => Err(Refused(
                "This form was not sent by this dashboard page (its CSRF token is missing or \
                 wrong), so nothing was changed. Reload the page and try again.",
            )),
        }
    }
}

/// A form that carries the session's CSRF token as `_csrf`.
pub trait CsrfToken {
    fn csrf(&self) -> Option<&str>;
}

/// A mutating form posted by a signed-in operator from this site with the session's CSRF
/// token: the only way a page's handler gets to change anything.
pub struct Posted<T>(pub Operator, pub T);

impl<T> axum::extract::FromRequest<AppState> for Posted<T>
where
    T: serde::de::DeserializeOwned + CsrfToken + Send,
{
    type Rejection = Response;
    async fn from_request(req: axum::extract::Request, s: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let op = Operator::from_request_parts(&mut parts, s).await?;
        let headers = parts.headers.clone();
        let req = axum::extract::Request::from_parts(parts, body);
        let form = axum::Form::<T>::from_request(req, s)
            .await
            .ok()
            .map(|f| f.0);
        op.check(&headers, form.as_ref().and_then(CsrfToken::csrf))
            .map_err(IntoResponse::into_response)?;
        match form {
            Some(f) => Ok(Posted(op, f)),
            None => Err(error_page(
                "The form is malformed, so nothing was changed.",
                StatusCode::BAD_REQUEST,
            )),
        }
    }
}

/// A request refused before anything was read or changed: a `403` page saying why.
pub struct Refused(&'static str);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        error_page(self.0, StatusCode::FORBIDDEN)
    }
}

/// Refuses a request a browser marks as sent from another site (`Sec-Fetch-Site`), or whose
/// `Origin` is not this host.
fn cross_site(headers: &HeaderMap) -> Result<(), Refused> {
    let refused = || Refused("This request came from another site, so nothing was changed.");
    let value = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if value("sec-fetch-site").is_some_and(|v| v == "cross-site" || v == "same-site") {
        return Err(refused());
    }
    if let Some(origin) = value("origin") {
        let bare = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        if bare.is_none() || bare != value("host") {
            return Err(refused());
        }
    }
    Ok(())
}

/// The value of cookie `name`.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Adds `Set-Cookie` for a cookie only this site's pages send back and no script reads
/// (`max_age_s` 0 deletes it).
fn set_cookie(resp: &mut Response, headers: &HeaderMap, name: &str, value: &str, max_age_s: i64) {
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let cookie = format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{}",
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The headers every page carries: no caching, no framing, scripts and styles from this
/// site only.
fn page_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, header::CACHE_CONTROL, "no-store");
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
         frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    );
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "same-origin");
}

/// An HTML answer with the page headers.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response();
    page_headers(&mut resp);
    resp
}

/// Which section of the navigation a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Feed,
    Approvals,
    Changes,
    Agents,
    Journal,
    Reports,
    Killswitch,
    None,
}

/// What the layout shows of the operator and the gate.
pub struct Chrome {
    pub who: Option<(String, String)>,
    pub holds: usize,
    pub killswitch: bool,
}

impl Chrome {
    pub async fn of(s: &AppState, op: &Operator) -> Self {
        Self::counted(s, op, s.gate.approvals().await.len()).await
    }

    /// For a page that read the pending holds itself: `holds` of them.
    pub async fn counted(s: &AppState, op: &Operator, holds: usize) -> Self {
        Self {
            who: Some((op.name.clone(), op.csrf.clone())),
            holds,
            killswitch: s.gate.killswitch().await,
        }
    }
}

/// The page around `body`.
pub fn layout(title: &str, nav: Nav, chrome: &Chrome, body: Markup) -> Markup {
    let link = |href: &str, label: &str, me: Nav| {
        html! {
            li { a href=(href) aria-current=[(nav == me).then_some("page")] { (label) } }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Airlock" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/assets/app.css";
                script src="/assets/app.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "Airlock" }
                    @if chrome.who.is_some() {
                        nav aria-label="Sections" {
                            ul {
                                (link("/", "Feed", Nav::Feed))
                                li {
                                    a href="/approvals" aria-current=[(nav == Nav::Approvals).then_some("page")] {
                                        "Approvals"
                                        @if chrome.holds > 0 {
                                            " " span.count aria-label=(format!("{} pending", chrome.holds)) { (chrome.holds) }
                                        }
                                    }
                                }
                                (link("/changes", "Changes", Nav::Changes))
                                (link("/agents", "Agents", Nav::Agents))
                                (link("/journal", "Journal", Nav::Journal))
                                (link("/reports", "Reports", Nav::Reports))
                                li {
                                    a href="/killswitch" aria-current=[(nav == Nav::Killswitch).then_some("page")]
                                        class=(if chrome.killswitch { "kill on" } else { "kill" }) {
                                        "Kill switch: " (if chrome.killswitch { "ON" } else { "off" })
                                    }
                                }
                            }
                        }
                    }
                    @if let Some((name, csrf)) = &chrome.who {
                        form.who method="post" action="/logout" {
                            span { "Signed in as " strong { (name) } }
                            input type="hidden" name="_csrf" value=(csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page that says what went wrong.
pub fn error_page(message: &str, status: StatusCode) -> Response {
    let chrome = Chrome {
        who: None,
        holds: 0,
        killswitch: false,
    };
    respond(
        status,
        layout(
            status.canonical_reason().unwrap_or("Error"),
            Nav::None,
            &chrome,
            html! { p.error role="alert" { (message) } p { a href="/" { "Back to the feed" } } },
        ),
    )
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

/// Only a path on this site is a place to go after signing in.
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.into(),
        _ => "/".into(),
    }
}

fn login_page(next: &str, nonce: &str, problem: Option<&str>) -> Markup {
    let chrome = Chrome {
        who: None,
        holds: 0,
        killswitch: false,
    };
    layout(
        "Sign in",
        Nav::None,
        &chrome,
        html! {
            @if let Some(p) = problem {
                p.error role="alert" #login-error { (p) }
            }
            form.card.login method="post" action="/login" {
                p { "Paste an operator's token (" code { "airlock token create --operator NAME" }
                    "). Agents' tokens cannot sign in." }
                label for="token" { "Operator token" }
                input #token type="password" name="token" autocomplete="off" required autofocus;
                input type="hidden" name="_login" value=(nonce);
                input type="hidden" name="next" value=(next);
                button.primary type="submit" { "Sign in" }
            }
        },
    )
}

async fn login_form(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: axum::extract::Query<LoginQuery>,
) -> Response {
    if s.dashboard.is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let nonce = session::random_hex();
    let mut resp = respond(
        StatusCode::OK,
        login_page(&local_path(q.next.as_deref()), &nonce, None),
    );
    set_cookie(&mut resp, &headers, LOGIN_COOKIE, &nonce, 3600);
    resp
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
    #[serde(rename = "_login")]
    nonce: Option<String>,
    next: Option<String>,
}

async fn login(
    State(s): State<AppState>,
    headers: HeaderMap,
    form: Result<axum::Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(d) = &s.dashboard else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Err(r) = cross_site(&headers) {
        return r.into_response();
    }
    let Ok(axum::Form(f)) = form else {
        return error_page("The sign-in form is malformed.", StatusCode::BAD_REQUEST);
    };
    let next = local_path(f.next.as_deref());
    let fresh = session::random_hex();
    let again = |problem: &str, status: StatusCode| {
        let mut resp = respond(status, login_page(&next, &fresh, Some(problem)));
        set_cookie(&mut resp, &headers, LOGIN_COOKIE, &fresh, 3600);
        resp
    };
    let expected = cookie(&headers, LOGIN_COOKIE);
    let nonce_ok = matches!((&expected, &f.nonce), (Some(a), Some(b)) if session::same(a, b));
    if !nonce_ok {
        return again(
            "This sign-in form was not sent by this page (its nonce is missing or wrong). \
             Try again.",
            StatusCode::FORBIDDEN,
        );
    }
    let token = f.token.trim();
    match s.door.authenticate(token).await {
        Ok(p) if p.kind == PrincipalKind2::Agent => {
            tracing::warn!(agent = %p.name, "an agent's token was refused at the dashboard sign-in");
            again(
                &format!(
                    "`{}` is an agent: agents' tokens cannot sign in to the dashboard. \
                     Use an operator's token.",
                    p.name
                ),
                StatusCode::FORBIDDEN,
            )
        }
        Ok(p) => {
            let now = s.gate.now();
            let (id, ttl_s) = d.sessions.open(token, now);
            tracing::info!(operator = %p.name, "signed in to the dashboard");
            let mut resp = Redirect::to(&next).into_response();
            set_cookie(&mut resp, &headers, COOKIE, &id, ttl_s);
            set_cookie(&mut resp, &headers, LOGIN_COOKIE, "", 0);
            resp
        }
        Err(GateError::Unauthenticated) => again(
            "That token is not valid (unknown, revoked or mistyped).",
            StatusCode::UNAUTHORIZED,
        ),
        Err(e) => error_page(&e.to_string(), StatusCode::SERVICE_UNAVAILABLE),
    }
}

/// A form with nothing but its CSRF token (a button).
#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(rename = "_csrf")]
    pub csrf: Option<String>,
}

impl CsrfToken for CsrfForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

async fn logout(
    State(s): State<AppState>,
    headers: HeaderMap,
    Posted(op, _): Posted<CsrfForm>,
) -> Response {
    if let Some(d) = &s.dashboard {
        d.sessions.remove(&op.session);
    }
    let mut resp = Redirect::to("/login").into_response();
    set_cookie(&mut resp, &headers, COOKIE, "", 0);
    resp
}

async fn css() -> Response {
    asset(include_str!("assets/app.css"), "text/css; charset=utf-8")
}

async fn js() -> Response {
    asset(
        include_str!("assets/app.js"),
        "text/javascript; charset=utf-8",
    )
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// A handle to the state's dashboard (the routes exist only when there is one).
pub fn of(s: &AppState) -> Option<&Arc<Dashboard>> {
    s.dashboard.as_ref()
}
