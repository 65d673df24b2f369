//! Rules for databases: SQL given to `psql`, `mysql`, `sqlite3` and friends (as an
//! option, an argument, or on stdin), each statement classified on its own; plus
//! `redis-cli` and `mongosh`.

use crate::detect_env;
use crate::rules::{Cmd, Finding, Outcome, env_of, has, operands, opt};
use crate::run::{Arg, Stdin, Taint};
use airlock_core::{Risk, Verb};

pub(crate) fn classify(cmd: &Cmd) -> Option<Outcome> {
    match cmd.program {
        "psql" => client(cmd, &PSQL),
        "mysql" | "mariadb" => client(cmd, &MYSQL),
        "sqlite3" | "sqlite" | "duckdb" => sqlite(cmd),
        "clickhouse-client" => client(cmd, &CLICKHOUSE),
        "cockroach" if cmd.arg(0) == Some("sql") => client(cmd, &COCKROACH),
        "redis-cli" => redis(cmd),
        // PostgreSQL's own wrappers around `DROP DATABASE` / `DROP ROLE`.
        "dropdb" | "dropuser" => {
            let ops = operands(
                cmd.args,
                &[
                    "-h",
                    "--host",
                    "-p",
                    "--port",
                    "-U",
                    "--username",
                    "--maintenance-db",
                ],
            );
            let target = ops.last().copied();
            let kind = if cmd.program == "dropdb" {
                "database"
            } else {
                "role"
            };
            let name = target.map_or_else(|| "unnamed".to_string(), Arg::name);
            let env = env_of([target, opt(cmd.args, &["-h", "--host"]).as_ref()]);
            let f = Finding::new(
                "sql-drop",
                Verb::Delete,
                Risk::Critical,
                "sql",
                &format!("{kind}.{name}"),
            );
            Outcome::of(f.destructive().env(env))
        }
        "mongo" | "mongosh" => mongo(cmd),
        _ => None,
    }
}

/// How one SQL client spells its options.
struct Client {
    /// Options carrying SQL text (may repeat).
    sql: &'static [&'static str],
    /// Options naming the database.
    db: &'static [&'static str],
    host: &'static [&'static str],
    file: &'static [&'static str],
    /// All options that take a separate value.
    with_value: &'static [&'static str],
    /// Options that only list or print (`psql -l`, `--version`).
    read_only: &'static [&'static str],
}

const PSQL: Client = Client {
    sql: &["-c", "--command"],
    db: &["-d", "--dbname"],
    host: &["-h", "--host"],
    file: &["-f", "--file"],
    with_value: &[
        "-c",
        "--command",
        "-d",
        "--dbname",
        "-h",
        "--host",
        "-p",
        "--port",
        "-U",
        "--username",
        "-f",
        "--file",
        "-v",
        "--set",
        "--variable",
        "-o",
        "--output",
        "-P",
        "--pset",
        "-F",
        "-R",
        "-T",
        "-L",
        "--log-file",
    ],
    read_only: &["-l", "--list", "--version", "-V", "--help", "-?"],
};

const MYSQL: Client = Client {
    sql: &["-e", "--execute"],
    db: &["-D", "--database"],
    host: &["-h", "--host"],
    file: &[],
    with_value: &[
        "-e",
        "--execute",
        "-D",
        "--database",
        "-h",
        "--host",
        "-u",
        "--user",
        "-P",
        "--port",
        "-S",
        "--socket",
        "--default-character-set",
        "--login-path",
    ],
    read_only: &["--version", "-V", "--help", "-?"],
};

const CLICKHOUSE: Client = Client {
    sql: &["-q", "--query"],
    db: &["-d", "--database"],
    host: &["-h", "--host"],
    file: &["--queries-file"],
    with_value: &[
        "-q",
        "--query",
        "-d",
        "--database",
        "-h",
        "--host",
        "--port",
        "-u",
        "--user",
        "--password",
        "--queries-file",
        "-f",
        "--format",
    ],
    read_only: &["--version", "-V", "--help"],
};

const COCKROACH: Client = Client {
    sql: &["-e", "--execute"],
    db: &["-d", "--database"],
    host: &["--host"],
    file: &["-f", "--file"],
    with_value: &[
        "-e",
        "--execute",
        "-d",
        "--database",
        "--host",
        "--url",
        "-u",
        "--user",
        "--port",
        "-f",
        "--file",
        "--certs-dir",
        "--format",
    ],
    read_only: &["--version", "--help"],
};

/// All values of the given options, in order.
fn all_values(args: &[Arg], names: &[&str]) -> Vec<Arg> {
    let mut out = Vec::new();
    for (i, a) in args.iter().enumerate() {
        for n in names {
            if a.text == *n {
                if let Some(v) = args.get(i + 1) {
                    out.push(v.clone());
                }
            } else if let Some(v) = a.text.strip_prefix(n) {
                let v = if n.starts_with("--") {
                    v.strip_prefix('=')
                } else {
                    Some(v).filter(|v| !v.is_empty())
                };
                if let Some(v) = v {
                    out.push(Arg {
                        text: v.to_string(),
                        ..a.clone()
                    });
                }
            }
        }
    }
    out
}

/// Splits `postgres://user@host:5432/prod_db?x=y` into host and database.
fn parse_url(url: &str) -> Option<(String, String)> {
    let (_, rest) = url.split_once("://")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let host = host.split(':').next().unwrap_or(host);
    let db = path.split('?').next().unwrap_or(path);
    Some((host.to_string(), db.to_string()))
}

fn client(cmd: &Cmd, c: &Client) -> Option<Outcome> {
    let args = cmd.args;
    let positional = operands(args, c.with_value);
    let positional: Vec<&Arg> = positional
        .into_iter()
        .filter(|a| !(cmd.program == "cockroach" && a.text == "sql"))
        .collect();
    let mut db = opt(args, c.db);
    let mut host = opt(args, c.host);
    let url_opt = opt(args, &["--url"]);
    let urls: Vec<&Arg> = positional
        .iter()
        .copied()
        .chain(url_opt.as_ref())
        .filter(|a| a.text.contains("://"))
        .collect();
    for u in &urls {
        if let Some((h, d)) = parse_url(&u.text) {
            host = host.or(Some(Arg {
                text: h,
                ..(*u).clone()
            }));
            db = db.or(Some(Arg {
                text: d,
                ..(*u).clone()
            })
            .filter(|d| !d.text.is_empty()));
        }
    }
    if db.is_none() {
        db = positional
            .iter()
            .find(|a| !a.text.contains("://"))
            .map(|a| (*a).clone());
    }
    let var = |n: &str| cmd.var(n).map(|v| Arg::lit(&v));
    let db = db
        .or_else(|| var("PGDATABASE"))
        .or_else(|| var("MYSQL_DATABASE"));
    let host = host.or_else(|| var("PGHOST"));
    let url_var = var("DATABASE_URL");
    let env = env_of([db.as_ref(), host.as_ref(), url_var.as_ref()]);
    let db_name = db.as_ref().map_or_else(|| "default".to_string(), Arg::name);

    let texts = all_values(args, c.sql);
    if !texts.is_empty() {
        return Some(from_texts(&texts, env, &db_name));
    }
    if has(args, c.read_only) {
        return Outcome::of(
            Finding::read("sql-read", "sql", &format!("database.{db_name}")).env(env),
        );
    }
    if let Some(f) = opt(args, c.file) {
        let f = Finding::new(
            "sql-opaque",
            Verb::Exec,
            Risk::Medium,
            "sql",
            &format!("file.{}", f.name()),
        );
        return Outcome::of(f.env(env));
    }
    Some(from_stdin(cmd.stdin, env, &db_name))
}

/// Findings for SQL passed as arguments; unresolved text is opaque.
fn from_texts(texts: &[Arg], env: Option<String>, db_name: &str) -> Outcome {
    let mut out = Outcome::default();
    for t in texts {
        if t.resolved {
            out.findings.extend(statements(&t.text, env.clone()));
        } else {
            out.findings.push(opaque(t.taint, env.clone(), db_name));
        }
    }
    if out.findings.is_empty() {
        out.findings
            .push(Finding::read("sql-read", "sql", &format!("database.{db_name}")).env(env));
    }
    out
}

/// Findings for a client reading SQL from stdin (or interactively).
fn from_stdin(stdin: &Stdin, env: Option<String>, db_name: &str) -> Outcome {
    match stdin {
        Stdin::Text(t) => from_texts(&[Arg::lit(t)], env, db_name),
        Stdin::Opaque(taint) => Outcome::from(opaque(*taint, env, db_name)),
        Stdin::Terminal => Outcome::from(
            Finding::new(
                "sql-session",
                Verb::Exec,
                Risk::Medium,
                "sql",
                &format!("database.{db_name}"),
            )
            .env(env),
        ),
    }
}

/// SQL that cannot be read statically: a file, a pipe, a variable.
fn opaque(taint: Taint, env: Option<String>, db_name: &str) -> Finding {
    let risk = if taint.download || taint.decode {
        Risk::High
    } else {
        Risk::Medium
    };
    Finding::new(
        "sql-opaque",
        Verb::Exec,
        risk,
        "sql",
        &format!("database.{db_name}"),
    )
    .env(env)
}

fn sqlite(cmd: &Cmd) -> Option<Outcome> {
    let ops = operands(
        cmd.args,
        &["-cmd", "-separator", "-init", "-newline", "-nullvalue"],
    );
    let file = ops.first().copied();
    let env = file.and_then(Arg::env);
    let db_name = file.map_or_else(|| "memory".to_string(), Arg::name);
    let mut texts: Vec<Arg> = ops
        .get(1..)
        .unwrap_or_default()
        .iter()
        .map(|a| (*a).clone())
        .collect();
    texts.extend(all_values(cmd.args, &["-cmd"]));
    if !texts.is_empty() {
        return Some(from_texts(&texts, env, &db_name));
    }
    if has(cmd.args, &["-version", "--version", "-help", "--help"]) {
        return Outcome::of(Finding::read(
            "sql-read",
            "sql",
            &format!("database.{db_name}"),
        ));
    }
    Some(from_stdin(cmd.stdin, env, &db_name))
}

// ---- SQL statements ----

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A bare word, upper-cased for keywords; `orig` keeps the spelling for names.
    Word {
        upper: String,
        orig: String,
    },
    /// A quoted identifier (`"Users"`, `` `users` ``).
    Ident(String),
    /// A string literal.
    Str(String),
    Punct(char),
    /// A client meta-command (`\dt`, `\c db`), up to the end of its line.
    Meta,
}

fn sql_tokens(src: &str) -> Vec<Tok> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let until = |i: usize, end: char| {
        let mut j = i;
        while j < chars.len() && chars[j] != end {
            j += 1;
        }
        j
    };
    while let Some(&c) = chars.get(i) {
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && next == Some('-') {
            i = until(i, '\n');
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if c == '\\' {
            i = until(i, '\n');
            out.push(Tok::Meta);
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            while let Some(&d) = chars.get(i) {
                i += 1;
                if d == '\'' {
                    if chars.get(i) == Some(&'\'') {
                        s.push('\'');
                        i += 1;
                        continue;
                    }
                    break;
                }
                s.push(d);
            }
            out.push(Tok::Str(s));
        } else if c == '"' || c == '`' || c == '[' {
            let end = if c == '[' { ']' } else { c };
            let j = until(i + 1, end);
            out.push(Tok::Ident(
                chars.get(i + 1..j).unwrap_or_default().iter().collect(),
            ));
            i = j + 1;
        } else if let Some(tag_len) = dollar_tag(&chars[i..]) {
            // Dollar quoting: $$ … $$ or $tag$ … $tag$.
            let tag = &chars[i..i + tag_len];
            let body_start = i + tag_len;
            let mut j = body_start;
            while j < chars.len() && chars.get(j..j + tag_len) != Some(tag) {
                j += 1;
            }
            out.push(Tok::Str(
                chars
                    .get(body_start..j)
                    .unwrap_or_default()
                    .iter()
                    .collect(),
            ));
            i = j + tag_len;
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let mut j = i;
            while chars
                .get(j)
                .is_some_and(|d| d.is_alphanumeric() || *d == '_' || *d == '$')
            {
                j += 1;
            }
            let orig: String = chars[i..j].iter().collect();
            out.push(Tok::Word {
                upper: orig.to_ascii_uppercase(),
                orig,
            });
            i = j;
        } else {
            out.push(Tok::Punct(c));
            i += 1;
        }
    }
    out
}

/// The length of a dollar-quote tag (`$$`, `$body$`) at the start of `s`.
fn dollar_tag(s: &[char]) -> Option<usize> {
    if s.first() != Some(&'$') {
        return None;
    }
    let ident = s[1..]
        .iter()
        .take_while(|c| c.is_ascii_alphabetic() || **c == '_')
        .count();
    (s.get(1 + ident) == Some(&'$')).then_some(ident + 2)
}

/// A statement's tokens with their parenthesis depth.
type Stmt = Vec<(usize, Tok)>;

fn split_statements(toks: Vec<Tok>) -> Vec<Stmt> {
    let mut all = Vec::new();
    let mut cur = Vec::new();
    let mut depth = 0usize;
    for t in toks {
        match t {
            Tok::Punct(';') | Tok::Meta => {
                if !cur.is_empty() {
                    all.push(std::mem::take(&mut cur));
                }
                depth = 0;
                continue;
            }
            Tok::Punct('(') => {
                cur.push((depth, t));
                depth += 1;
                continue;
            }
            Tok::Punct(')') => depth = depth.saturating_sub(1),
            _ => {}
        }
        cur.push((depth, t));
    }
    if !cur.is_empty() {
        all.push(cur);
    }
    all
}

fn kw(t: Option<&(usize, Tok)>) -> &str {
    match t {
        Some((_, Tok::Word { upper, .. })) => upper,
        _ => "",
    }
}

/// Whether a token is one of the keywords.
fn is_kw(t: &Tok, words: &[&str]) -> bool {
    matches!(t, Tok::Word { upper, .. } if words.contains(&upper.as_str()))
}

/// The position of a keyword outside parentheses.
fn top_level(s: &[(usize, Tok)], word: &str) -> Option<usize> {
    s.iter().position(|(d, t)| *d == 0 && is_kw(t, &[word]))
}

/// A possibly qualified name starting at `i` (`public.users`, `"Users"`); returns it
/// and the index after it.
fn name_at(s: &[(usize, Tok)], mut i: usize) -> (Option<String>, usize) {
    let mut parts = Vec::new();
    loop {
        match s.get(i).map(|(_, t)| t) {
            Some(Tok::Word { orig, .. }) => parts.push(orig.clone()),
            Some(Tok::Ident(n)) => parts.push(n.clone()),
            _ => break,
        }
        i += 1;
        if matches!(s.get(i), Some((_, Tok::Punct('.')))) {
            i += 1;
        } else {
            break;
        }
    }
    ((!parts.is_empty()).then(|| parts.join(".")), i)
}

/// Skips optional keywords at `i`.
fn skip_words(s: &[(usize, Tok)], mut i: usize, words: &[&str]) -> usize {
    while words.contains(&kw(s.get(i))) {
        i += 1;
    }
    i
}

/// Classifies every statement in a SQL text.
pub(crate) fn statements(text: &str, env: Option<String>) -> Vec<Finding> {
    split_statements(sql_tokens(text))
        .iter()
        .filter_map(|s| statement(s))
        .map(|f| {
            let own = detect_env(&f.name);
            f.env(env.clone().or(own))
        })
        .collect()
}

fn statement(s: &[(usize, Tok)]) -> Option<Finding> {
    let first = kw(s.first());
    let table = |rule, verb, risk, at: usize| {
        let (name, _) = name_at(s, at);
        Finding::new(
            rule,
            verb,
            risk,
            "sql",
            &format!("table.{}", name.unwrap_or_else(|| "unnamed".to_string())),
        )
    };
    let f = match first {
        "SELECT" | "SHOW" | "DESCRIBE" | "DESC" | "TABLE" | "VALUES" | "PRAGMA" => {
            match top_level(s, "FROM") {
                Some(i) => table("sql-select", Verb::Read, Risk::Low, i + 1),
                None => Finding::read("sql-select", "sql", "query"),
            }
        }
        "EXPLAIN" => {
            let i = skip_words(s, 1, &["ANALYZE", "ANALYSE", "VERBOSE"]);
            if s.iter()
                .take(i)
                .any(|(_, t)| matches!(t, Tok::Word { upper, .. } if upper.starts_with("ANALY")))
            {
                return statement(s.get(i..).unwrap_or_default());
            }
            Finding::read("sql-select", "sql", "query")
        }
        "WITH" => {
            let at = s
                .iter()
                .position(|(_, t)| is_kw(t, &["DELETE", "UPDATE", "INSERT", "MERGE"]));
            match at {
                Some(i) => {
                    let d = s[i].0;
                    let end = s[i..]
                        .iter()
                        .position(|(dd, _)| *dd < d)
                        .map_or(s.len(), |e| i + e);
                    let sub: Vec<(usize, Tok)> = s[i..end]
                        .iter()
                        .map(|(dd, t)| (dd - d, t.clone()))
                        .collect();
                    return statement(&sub);
                }
                None => Finding::read("sql-select", "sql", "query"),
            }
        }
        "DROP" => {
            let obj = kw(s.get(1));
            let obj_at = if obj == "MATERIALIZED" || obj == "TEMPORARY" {
                2
            } else {
                1
            };
            let obj = kw(s.get(obj_at)).to_ascii_lowercase();
            let i = skip_words(s, obj_at + 1, &["IF", "EXISTS", "CONCURRENTLY"]);
            let mut names = Vec::new();
            let mut j = i;
            loop {
                let (n, next) = name_at(s, j);
                let Some(n) = n else { break };
                names.push(n);
                j = next;
                if matches!(s.get(j), Some((_, Tok::Punct(',')))) {
                    j += 1;
                } else {
                    break;
                }
            }
            let kind = if obj.is_empty() {
                "object".to_string()
            } else {
                obj
            };
            let critical = matches!(kind.as_str(), "table" | "database" | "schema" | "keyspace");
            let risk = if critical { Risk::Critical } else { Risk::High };
            let name = if names.is_empty() {
                "unnamed".to_string()
            } else {
                names.join(",")
            };
            Finding::new(
                "sql-drop",
                Verb::Delete,
                risk,
                "sql",
                &format!("{kind}.{name}"),
            )
            .destructive()
        }
        "TRUNCATE" => {
            let i = skip_words(s, 1, &["TABLE", "ONLY"]);
            table("sql-truncate", Verb::Delete, Risk::Critical, i).destructive()
        }
        "DELETE" => {
            let at = top_level(s, "FROM").map_or(1, |f| skip_words(s, f + 1, &["ONLY"]));
            if has_real_where(s) {
                table("sql-delete", Verb::Delete, Risk::Medium, at)
            } else {
                table("sql-delete-without-where", Verb::Delete, Risk::Critical, at).destructive()
            }
        }
        "UPDATE" => {
            let at = skip_words(s, 1, &["ONLY", "LOW_PRIORITY", "IGNORE"]);
            if has_real_where(s) {
                table("sql-update", Verb::Update, Risk::Medium, at)
            } else {
                table("sql-update-without-where", Verb::Update, Risk::High, at).destructive()
            }
        }
        "INSERT" | "REPLACE" | "UPSERT" => {
            let at = skip_words(s, 1, &["INTO", "IGNORE", "LOW_PRIORITY", "OR", "REPLACE"]);
            table("sql-insert", Verb::Create, Risk::Medium, at)
        }
        "MERGE" => table(
            "sql-merge",
            Verb::Update,
            Risk::Medium,
            skip_words(s, 1, &["INTO"]),
        ),
        "ALTER" => {
            let obj = kw(s.get(1)).to_ascii_lowercase();
            let at = skip_words(s, 2, &["IF", "EXISTS", "ONLY"]);
            let (name, _) = name_at(s, at);
            let name = format!(
                "{}.{}",
                if obj.is_empty() { "object" } else { &obj },
                name.unwrap_or_else(|| "unnamed".to_string())
            );
            let drops = s.iter().skip(2).any(|(_, t)| is_kw(t, &["DROP"]));
            if drops {
                Finding::new("sql-alter-drop", Verb::Update, Risk::High, "sql", &name).destructive()
            } else {
                Finding::new("sql-alter", Verb::Update, Risk::Medium, "sql", &name)
            }
        }
        "CREATE" => {
            let i = skip_words(
                s,
                1,
                &[
                    "OR",
                    "REPLACE",
                    "UNIQUE",
                    "TEMP",
                    "TEMPORARY",
                    "MATERIALIZED",
                    "UNLOGGED",
                    "GLOBAL",
                    "LOCAL",
                ],
            );
            let obj = kw(s.get(i)).to_ascii_lowercase();
            let at = skip_words(s, i + 1, &["IF", "NOT", "EXISTS", "CONCURRENTLY"]);
            let (name, _) = name_at(s, at);
            let name = format!(
                "{}.{}",
                if obj.is_empty() { "object" } else { &obj },
                name.unwrap_or_else(|| "unnamed".to_string())
            );
            Finding::new("sql-create", Verb::Create, Risk::Medium, "sql", &name)
        }
        "GRANT" | "REVOKE" => {
            Finding::new("sql-grant", Verb::Update, Risk::Medium, "sql", "privileges")
        }
        "COPY" => {
            if top_level(s, "FROM").is_some() {
                table("sql-copy", Verb::Update, Risk::Medium, 1)
            } else {
                Finding::read("sql-select", "sql", "query")
            }
        }
        "VACUUM" | "ANALYZE" | "ANALYSE" | "REINDEX" | "CLUSTER" | "OPTIMIZE" | "FLUSH"
        | "REFRESH" | "CHECKPOINT" => Finding::new(
            "sql-maintenance",
            Verb::Update,
            Risk::Low,
            "sql",
            &first.to_ascii_lowercase(),
        ),
        "CALL" | "EXEC" | "EXECUTE" | "DO" | "SOURCE" | "LOAD" => Finding::new(
            "sql-exec",
            Verb::Exec,
            Risk::Medium,
            "sql",
            &first.to_ascii_lowercase(),
        ),
        "BEGIN" | "START" | "COMMIT" | "ROLLBACK" | "END" | "ABORT" | "SAVEPOINT" | "RELEASE"
        | "SET" | "RESET" | "USE" | "LISTEN" | "NOTIFY" | "UNLISTEN" | "DISCARD" | "LOCK"
        | "PREPARE" | "DEALLOCATE" | "DECLARE" | "FETCH" | "CLOSE" | "MOVE" => return None,
        _ => Finding::new("sql-other", Verb::Exec, Risk::Medium, "sql", "statement"),
    };
    Some(f)
}

/// Whether a statement has a top-level `WHERE` that is not always true (`WHERE 1=1`).
fn has_real_where(s: &[(usize, Tok)]) -> bool {
    let Some(at) = top_level(s, "WHERE") else {
        return false;
    };
    let cond: Vec<&Tok> = s[at + 1..]
        .iter()
        .take_while(|(d, t)| {
            !(*d == 0
                && matches!(t, Tok::Word { upper, .. }
                    if matches!(upper.as_str(), "RETURNING" | "ORDER" | "LIMIT")))
        })
        .filter(|(d, _)| *d == 0)
        .map(|(_, t)| t)
        .collect();
    let mut disjuncts = cond.split(|t| is_kw(t, &["OR"]));
    !cond.is_empty() && !disjuncts.any(always_true)
}

fn always_true(d: &[&Tok]) -> bool {
    let lit = |t: &Tok| match t {
        Tok::Word { upper, .. } if upper.chars().all(|c| c.is_ascii_digit()) => Some(upper.clone()),
        Tok::Str(s) => Some(format!("'{s}")),
        _ => None,
    };
    match d {
        [Tok::Word { upper, .. }] => {
            upper == "TRUE" || (upper.chars().all(|c| c.is_ascii_digit()) && upper != "0")
        }
        [Tok::Word { upper: n, .. }, Tok::Word { upper: f, .. }] => n == "NOT" && f == "FALSE",
        [a, Tok::Punct('='), b] => lit(a).is_some() && lit(a) == lit(b),
        _ => false,
    }
}

// ---- other data stores ----

/// Redis commands that only read.
const REDIS_READS: &[&str] = &[
    "GET",
    "MGET",
    "KEYS",
    "SCAN",
    "INFO",
    "PING",
    "TTL",
    "PTTL",
    "TYPE",
    "EXISTS",
    "HGET",
    "HGETALL",
    "HMGET",
    "HKEYS",
    "HVALS",
    "HLEN",
    "HSCAN",
    "LRANGE",
    "LLEN",
    "LINDEX",
    "SMEMBERS",
    "SCARD",
    "SISMEMBER",
    "SSCAN",
    "ZRANGE",
    "ZRANGEBYSCORE",
    "ZREVRANGE",
    "ZCARD",
    "ZSCORE",
    "ZSCAN",
    "DBSIZE",
    "MONITOR",
    "CLIENT",
    "SLOWLOG",
    "MEMORY",
    "XRANGE",
    "XREAD",
    "XLEN",
    "STRLEN",
    "TIME",
    "LASTSAVE",
    "ROLE",
    "CLUSTER",
    "PUBSUB",
    "SUBSCRIBE",
    "ECHO",
    "AUTH",
    "SELECT",
    "OBJECT",
    "DUMP",
    "RANDOMKEY",
    "COMMAND",
    "LATENCY",
];

fn redis(cmd: &Cmd) -> Option<Outcome> {
    let with_value = [
        "-h",
        "-p",
        "-a",
        "-n",
        "-u",
        "--user",
        "--pass",
        "-s",
        "-r",
        "-i",
        "--tls-cert",
    ];
    let ops = operands(cmd.args, &with_value);
    let host = opt(cmd.args, &["-h", "-u"]);
    let env = env_of([host.as_ref()]);
    if has(
        cmd.args,
        &[
            "--scan",
            "--bigkeys",
            "--memkeys",
            "--stat",
            "--latency",
            "--version",
        ],
    ) {
        return Outcome::of(Finding::read("redis-read", "redis", "keys").env(env));
    }
    let lines: Vec<Vec<String>> = match (ops.is_empty(), cmd.stdin) {
        (false, _) => vec![ops.iter().map(|a| a.name()).collect()],
        (true, Stdin::Text(t)) => t
            .lines()
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .collect(),
        (true, Stdin::Opaque(_)) => {
            let f = Finding::new(
                "redis-opaque",
                Verb::Exec,
                Risk::Medium,
                "redis",
                "commands",
            );
            return Outcome::of(f.env(env));
        }
        (true, Stdin::Terminal) => {
            let f = Finding::new(
                "redis-session",
                Verb::Exec,
                Risk::Medium,
                "redis",
                "session",
            );
            return Outcome::of(f.env(env));
        }
    };
    let mut out = Outcome::default();
    for words in lines.iter().filter(|w| !w.is_empty()) {
        let c = words[0].to_ascii_uppercase();
        let key = words.get(1).cloned().unwrap_or_else(|| "all".to_string());
        let sub = words
            .get(1)
            .map(|w| w.to_ascii_uppercase())
            .unwrap_or_default();
        let f = match c.as_str() {
            "FLUSHALL" | "FLUSHDB" => {
                Finding::new("redis-flush", Verb::Delete, Risk::Critical, "redis", "all")
                    .destructive()
            }
            "SCRIPT" | "FUNCTION" if sub == "FLUSH" => Finding::new(
                "redis-flush",
                Verb::Delete,
                Risk::High,
                "redis",
                &c.to_ascii_lowercase(),
            )
            .destructive(),
            "SHUTDOWN" => Finding::new(
                "redis-shutdown",
                Verb::Restart,
                Risk::Critical,
                "redis",
                "server",
            ),
            "DEL" | "UNLINK" | "HDEL" | "SREM" | "ZREM" | "GETDEL" | "LTRIM" | "XDEL" | "XTRIM"
            | "ZREMRANGEBYSCORE" | "ZREMRANGEBYRANK" => Finding::new(
                "redis-del",
                Verb::Delete,
                Risk::Medium,
                "redis",
                &format!("key.{key}"),
            )
            .destructive(),
            "CONFIG" if sub == "SET" || sub == "REWRITE" || sub == "RESETSTAT" => {
                Finding::new("redis-config", Verb::Update, Risk::High, "redis", "config")
            }
            "EVAL" | "EVALSHA" | "FCALL" => {
                Finding::new("redis-exec", Verb::Exec, Risk::Medium, "redis", "script")
            }
            c if REDIS_READS.contains(&c) || (c == "CONFIG" && sub == "GET") => {
                Finding::read("redis-read", "redis", &format!("key.{key}"))
            }
            _ => Finding::new(
                "redis-write",
                Verb::Update,
                Risk::Medium,
                "redis",
                &format!("key.{key}"),
            ),
        };
        out.findings.push(f.env(env.clone()));
    }
    if out.findings.is_empty() {
        out.findings
            .push(Finding::read("redis-read", "redis", "keys").env(env));
    }
    Some(out)
}

fn mongo(cmd: &Cmd) -> Option<Outcome> {
    let with_value = [
        "--eval",
        "--host",
        "--port",
        "-u",
        "--username",
        "-p",
        "--password",
        "--authenticationDatabase",
        "-f",
        "--file",
    ];
    let ops = operands(cmd.args, &with_value);
    let target = ops.first().copied();
    let host = opt(cmd.args, &["--host"]);
    let env = env_of([target, host.as_ref()]);
    let script = opt(cmd.args, &["--eval"]).or_else(|| match cmd.stdin {
        Stdin::Text(t) => Some(Arg::lit(t)),
        _ => None,
    });
    let db = target.map_or_else(|| "default".to_string(), |a| a.name());
    let f = match script {
        Some(s) if s.resolved => {
            let js: String = s.text.chars().filter(|c| !c.is_whitespace()).collect();
            if js.contains("dropDatabase(") || js.contains(".drop(") {
                Finding::new(
                    "mongo-drop",
                    Verb::Delete,
                    Risk::Critical,
                    "mongo",
                    &format!("database.{db}"),
                )
                .destructive()
            } else if js.contains("deleteMany({})")
                || js.contains("remove({})")
                || js.contains("deleteMany()")
            {
                Finding::new(
                    "mongo-delete-all",
                    Verb::Delete,
                    Risk::Critical,
                    "mongo",
                    &format!("database.{db}"),
                )
                .destructive()
            } else if [
                "delete",
                "remove(",
                "update",
                "insert",
                "replace",
                "createIndex",
                "rename",
            ]
            .iter()
            .any(|k| js.contains(k))
            {
                Finding::new(
                    "mongo-write",
                    Verb::Update,
                    Risk::Medium,
                    "mongo",
                    &format!("database.{db}"),
                )
            } else {
                Finding::read("mongo-read", "mongo", &format!("database.{db}"))
            }
        }
        Some(_) => Finding::new(
            "mongo-opaque",
            Verb::Exec,
            Risk::Medium,
            "mongo",
            &format!("database.{db}"),
        ),
        None if has(cmd.args, &["--version", "--help"]) => {
            Finding::read("mongo-read", "mongo", "version")
        }
        None => Finding::new(
            "mongo-session",
            Verb::Exec,
            Risk::Medium,
            "mongo",
            &format!("database.{db}"),
        ),
    };
    Outcome::of(f.env(env))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(sql: &str) -> Vec<(&'static str, String)> {
        statements(sql, None)
            .into_iter()
            .map(|f| (f.rule, f.name))
            .collect()
    }

    #[test]
    fn statements_are_classified_one_by_one() {
        assert_eq!(
            rules("SELECT * FROM users; DELETE FROM orders; drop table \"Audit\""),
            [
                ("sql-select", "table.users".to_string()),
                ("sql-delete-without-where", "table.orders".to_string()),
                ("sql-drop", "table.Audit".to_string()),
            ]
        );
    }

    #[test]
    fn where_clauses_must_be_real() {
        assert_eq!(rules("DELETE FROM t WHERE id = 4")[0].0, "sql-delete");
        assert_eq!(
            rules("DELETE FROM t WHERE 1=1")[0].0,
            "sql-delete-without-where"
        );
        assert_eq!(
            rules("DELETE FROM t WHERE id = 4 OR 1 = 1")[0].0,
            "sql-delete-without-where"
        );
        assert_eq!(
            rules("UPDATE t SET a = (SELECT b FROM c WHERE x)")[0].0,
            "sql-update-without-where"
        );
        assert_eq!(
            rules("UPDATE public.t SET a = 1 WHERE id = 2")[0],
            ("sql-update", "table.public.t".to_string())
        );
        assert_eq!(
            rules("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d")[0].0,
            "sql-delete-without-where"
        );
        assert_eq!(
            rules("EXPLAIN ANALYZE DELETE FROM t")[0].0,
            "sql-delete-without-where"
        );
        assert_eq!(rules("EXPLAIN DELETE FROM t")[0].0, "sql-select");
    }

    #[test]
    fn comments_strings_and_transactions() {
        assert_eq!(
            rules("BEGIN; -- DROP TABLE x\nSELECT ';DROP TABLE y'; COMMIT").len(),
            1
        );
        assert_eq!(
            rules("ALTER TABLE users DROP COLUMN email")[0].0,
            "sql-alter-drop"
        );
        assert_eq!(
            rules("TRUNCATE TABLE ONLY logs")[0],
            ("sql-truncate", "table.logs".to_string())
        );
        assert_eq!(rules("DO $$ BEGIN DROP TABLE x; END $$")[0].0, "sql-exec");
        assert_eq!(rules("\\dt\nDROP SCHEMA app CASCADE")[0].0, "sql-drop");
    }

    #[test]
    fn urls_give_host_and_database() {
        assert_eq!(
            parse_url("postgres://u:p@db.prod.internal:5432/orders?sslmode=require"),
            Some(("db.prod.internal".to_string(), "orders".to_string()))
        );
    }
}
