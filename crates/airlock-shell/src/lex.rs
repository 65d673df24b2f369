//! The tokenizer: shell words (with quoting resolved into parts), control operators
//! and redirections, including here-documents. It accepts any input: unbalanced
//! quotes or parentheses simply run to the end of the text.

/// One piece of a word.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    /// Literal text; `quoted` when it came from quotes or an escape.
    Lit { text: String, quoted: bool },
    /// `$NAME`, `${NAME}` or `${NAME:-default}`. Forms the shell computes (`$1`, `$?`,
    /// `${X%/}`, `$(( … ))`) get a name no assignment can set, so they stay unresolved.
    Var {
        name: String,
        quoted: bool,
        default: Option<String>,
        /// Scripts the expansion may run: command substitutions in an operand
        /// (`${X:-$(cmd)}`, `${X/a/`cmd`}`) or in arithmetic (`$(( $(cmd) ))`).
        scripts: Vec<String>,
        /// The text of `$(( … ))`, whose variables are evaluated as arithmetic.
        arith: Option<String>,
    },
    /// `$( … )`, backticks, `<( … )` or `>( … )`: a nested script whose output is unknown.
    Subst { script: String, quoted: bool },
}

/// A shell word: its parts and the source text it came from.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Word {
    pub parts: Vec<Part>,
    pub raw: String,
}

impl Word {
    /// The word's text when it is made of literals only.
    #[cfg(test)]
    pub fn literal(&self) -> Option<String> {
        let mut s = String::new();
        for p in &self.parts {
            match p {
                Part::Lit { text, .. } => s.push_str(text),
                _ => return None,
            }
        }
        Some(s)
    }

    fn push_str(&mut self, s: &str, quoted: bool) {
        if let Some(Part::Lit { text, quoted: q }) = self.parts.last_mut()
            && *q == quoted
        {
            text.push_str(s);
            return;
        }
        self.parts.push(Part::Lit {
            text: s.to_string(),
            quoted,
        });
    }

    /// Whether the word is a bare number, i.e. the `2` of `2>&1`.
    fn is_fd(&self) -> bool {
        matches!(self.parts.as_slice(), [Part::Lit { text, quoted: false }]
            if !text.is_empty() && text.len() <= 2 && text.bytes().all(|b| b.is_ascii_digit()))
    }
}

/// Control operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    And,
    Or,
    Semi,
    Pipe,
    Amp,
    Newline,
    Open,
    Close,
}

/// Redirection operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RedirKind {
    /// `>`, `>|`, `&>`
    Out,
    /// `>>`, `&>>`
    Append,
    /// `<`, `<>`
    In,
    /// `<<` and `<<-`
    HereDoc,
    /// `<<<`
    HereString,
    /// `>&`, `<&`
    Dup,
}

/// A redirection with its target word and, for here-documents, the body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Redir {
    pub kind: RedirKind,
    pub target: Option<Word>,
    pub body: Option<String>,
}

/// A token of a command line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Token {
    Word(Word),
    Op(Op),
    Redir(Redir),
}

/// For every `(` in `chars`, where it closes (`usize::MAX` when it does not); quotes and
/// escapes are skipped the way `paren_body` skips them.
fn pair_table(chars: &[(usize, char)]) -> Vec<usize> {
    let mut closes = vec![usize::MAX; chars.len()];
    let mut stack = Vec::new();
    let mut i = 0;
    while let Some(&(_, c)) = chars.get(i) {
        match c {
            '\\' => i += 1,
            '\'' => {
                i += 1;
                while chars.get(i).is_some_and(|&(_, c)| c != '\'') {
                    i += 1;
                }
            }
            '"' => {
                i += 1;
                while let Some(&(_, c)) = chars.get(i) {
                    if c == '\\' {
                        i += 1;
                    } else if c == '"' {
                        break;
                    }
                    i += 1;
                }
            }
            '(' => stack.push(i),
            ')' => {
                if let Some(o) = stack.pop() {
                    closes[o] = i;
                }
            }
            _ => {}
        }
        i += 1;
    }
    closes
}

/// The scripts of the command substitutions in a piece of text (an expansion's operand,
/// an arithmetic expression, a prompt string), nested ones included; `quoted` reads it
/// as inside double quotes, where single quotes do not protect.
pub(crate) fn substitutions(text: &str, quoted: bool) -> Vec<String> {
    substitutions_at(text, quoted, 0)
}

/// How deep expansions may nest inside expansions before the rest counts as opaque.
const MAX_NEST: usize = 8;

fn substitutions_at(text: &str, quoted: bool, nest: usize) -> Vec<String> {
    if !text.contains(['$', '`']) {
        return Vec::new();
    }
    if nest > MAX_NEST {
        // Nested deeper than anyone writes by hand: whatever it runs is not known.
        return vec![format!("${{{}}}", crate::UNRESOLVED)];
    }
    let src = if quoted {
        format!("\"{}\"", text.replace('"', ""))
    } else {
        text.to_string()
    };
    let mut out = Vec::new();
    for t in tokenize_at(&src, nest) {
        let word = match t {
            Token::Word(w) => w,
            Token::Redir(Redir {
                target: Some(w), ..
            }) => w,
            _ => continue,
        };
        for p in word.parts {
            match p {
                Part::Subst { script, .. } => out.push(script),
                Part::Var { scripts, .. } => out.extend(scripts),
                Part::Lit { .. } => {}
            }
        }
    }
    out
}

/// Splits a command line into tokens.
pub(crate) fn tokenize(src: &str) -> Vec<Token> {
    tokenize_at(src, 0)
}

fn tokenize_at(src: &str, nest: usize) -> Vec<Token> {
    let mut lx = Lexer {
        nest,
        closes: None,
        src,
        chars: src.char_indices().collect(),
        pos: 0,
        tokens: Vec::new(),
        word: None,
        word_start: 0,
        pending: None,
        heredocs: Vec::new(),
    };
    lx.run();
    lx.tokens
}

struct PendingHeredoc {
    token: usize,
    delim: String,
    strip_tabs: bool,
}

struct Lexer<'a> {
    /// How deep inside other expansions this text is.
    nest: usize,
    /// Where each parenthesis closes, built on first need (see `close_of`).
    closes: Option<Vec<usize>>,
    src: &'a str,
    chars: Vec<(usize, char)>,
    pos: usize,
    tokens: Vec<Token>,
    word: Option<Word>,
    word_start: usize,
    /// A redirection waiting for its target word (`strip_tabs` for `<<-`).
    pending: Option<(RedirKind, bool)>,
    heredocs: Vec<PendingHeredoc>,
}

impl Lexer<'_> {
    fn peek_at(&self, i: usize) -> Option<char> {
        self.chars.get(i).map(|&(_, c)| c)
    }

    fn peek(&self) -> Option<char> {
        self.peek_at(self.pos)
    }

    fn byte_at(&self, i: usize) -> usize {
        self.chars.get(i).map_or(self.src.len(), |&(b, _)| b)
    }

    fn text(&self, from: usize, to: usize) -> String {
        let (a, b) = (self.byte_at(from), self.byte_at(to.max(from)));
        self.src.get(a..b).unwrap_or_default().to_string()
    }

    fn word(&mut self) -> &mut Word {
        if self.word.is_none() {
            self.word_start = self.pos;
        }
        self.word.get_or_insert_with(Word::default)
    }

    fn push_str(&mut self, s: &str, quoted: bool) {
        self.word().push_str(s, quoted);
    }

    fn push_part(&mut self, p: Part) {
        self.word().parts.push(p);
    }

    fn finish_word(&mut self) {
        let Some(mut w) = self.word.take() else {
            return;
        };
        w.raw = self.text(self.word_start, self.pos);
        match self.pending.take() {
            Some((kind, strip_tabs)) => {
                if kind == RedirKind::HereDoc {
                    let delim = w
                        .parts
                        .iter()
                        .map(|p| match p {
                            Part::Lit { text, .. } => text.clone(),
                            _ => String::new(),
                        })
                        .collect();
                    self.heredocs.push(PendingHeredoc {
                        token: self.tokens.len(),
                        delim,
                        strip_tabs,
                    });
                }
                self.tokens.push(Token::Redir(Redir {
                    kind,
                    target: Some(w),
                    body: None,
                }));
            }
            None => self.tokens.push(Token::Word(w)),
        }
    }

    /// Emits a redirection that never got a target (`echo >;`).
    fn flush_pending(&mut self) {
        if let Some((kind, _)) = self.pending.take() {
            self.tokens.push(Token::Redir(Redir {
                kind,
                target: None,
                body: None,
            }));
        }
    }

    fn push_op(&mut self, op: Op, len: usize) {
        self.finish_word();
        self.flush_pending();
        self.tokens.push(Token::Op(op));
        self.pos += len;
    }

    fn push_redir(&mut self, kind: RedirKind, strip_tabs: bool, len: usize) {
        if self.word.as_ref().is_some_and(Word::is_fd) {
            self.word = None;
        } else {
            self.finish_word();
        }
        self.flush_pending();
        self.pending = Some((kind, strip_tabs));
        self.pos += len;
    }

    fn run(&mut self) {
        while let Some(c) = self.peek() {
            let next = self.peek_at(self.pos + 1);
            match c {
                ' ' | '\t' | '\r' => {
                    self.finish_word();
                    self.pos += 1;
                }
                '\n' => {
                    self.push_op(Op::Newline, 1);
                    self.read_heredocs();
                }
                '#' if self.word.is_none() => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.pos += 1;
                    }
                }
                '\\' => match next {
                    Some('\n') => self.pos += 2,
                    Some(n) => {
                        self.push_str(&n.to_string(), true);
                        self.pos += 2;
                    }
                    None => {
                        self.push_str("\\", false);
                        self.pos += 1;
                    }
                },
                '\'' => self.single_quoted(),
                '"' => self.double_quoted(),
                '$' => self.dollar(false),
                '`' => self.backtick(false),
                '<' | '>' if next == Some('(') && self.word.is_none() => {
                    self.word();
                    let (script, after) = self.paren_body(self.pos + 2);
                    self.push_part(Part::Subst {
                        script,
                        quoted: false,
                    });
                    self.pos = after;
                }
                '(' if next == Some('(') && self.word.is_none() && self.command_start() => {
                    self.arith_command();
                }
                '&' | '|' | ';' | '(' | ')' | '<' | '>' => self.operator(c, next),
                _ => {
                    self.push_str(&c.to_string(), false);
                    self.pos += 1;
                }
            }
        }
        self.finish_word();
        self.flush_pending();
        self.read_heredocs();
    }

    /// Where the parenthesis at `open` closes, from a table of every pair built in one
    /// pass (quotes and escapes skipped), so that many `((` cost no rescans.
    fn close_of(&mut self, open: usize) -> Option<usize> {
        let chars = &self.chars;
        let closes = self.closes.get_or_insert_with(|| pair_table(chars));
        closes.get(open).copied().filter(|&c| c != usize::MAX)
    }

    /// Whether the next word would start a command.
    fn command_start(&self) -> bool {
        match self.tokens.last() {
            None | Some(Token::Op(_)) => self.pending.is_none(),
            Some(Token::Word(w)) => matches!(
                w.parts.as_slice(),
                [Part::Lit { text, quoted: false }]
                    if matches!(text.as_str(), "if" | "elif" | "while" | "until" | "then" | "do" | "else" | "!" | "{" | "time")
            ),
            Some(Token::Redir(_)) => false,
        }
    }

    /// `(( expr ))`: the word `((` and the expression read as inside double quotes, so
    /// its substitutions are parts; a nested subshell `((a); b)` stays two parentheses.
    fn arith_command(&mut self) {
        let (outer, inner) = (self.close_of(self.pos), self.close_of(self.pos + 1));
        let (Some(outer), Some(inner)) = (outer, inner) else {
            self.push_op(Op::Open, 1);
            return;
        };
        if inner + 1 != outer {
            self.push_op(Op::Open, 1);
            return;
        }
        let expr = self.text(self.pos + 2, inner);
        let after = outer + 1;
        self.tokens.push(Token::Word(Word {
            parts: vec![Part::Lit {
                text: "((".to_string(),
                quoted: false,
            }],
            raw: "((".to_string(),
        }));
        let inner = format!("\"{}\"", expr.replace('"', ""));
        if self.nest > MAX_NEST {
            self.tokens.push(Token::Word(Word {
                parts: vec![Part::Var {
                    name: "{((…))}".to_string(),
                    quoted: true,
                    default: None,
                    scripts: vec![format!("${{{}}}", crate::UNRESOLVED)],
                    arith: None,
                }],
                raw: expr.to_string(),
            }));
            self.pos = after;
            return;
        }
        let mut lx = Lexer {
            nest: self.nest + 1,
            closes: None,
            src: &inner,
            chars: inner.char_indices().collect(),
            pos: 0,
            tokens: Vec::new(),
            word: None,
            word_start: 0,
            pending: None,
            heredocs: Vec::new(),
        };
        lx.run();
        self.tokens.extend(
            lx.tokens
                .into_iter()
                .filter(|t| matches!(t, Token::Word(_))),
        );
        self.pos = after;
    }

    fn operator(&mut self, c: char, next: Option<char>) {
        let third = self.peek_at(self.pos + 2);
        match (c, next) {
            ('&', Some('&')) => self.push_op(Op::And, 2),
            ('&', Some('>')) if third == Some('>') => self.push_redir(RedirKind::Append, false, 3),
            ('&', Some('>')) => self.push_redir(RedirKind::Out, false, 2),
            ('&', _) => self.push_op(Op::Amp, 1),
            ('|', Some('|')) => self.push_op(Op::Or, 2),
            ('|', Some('&')) => self.push_op(Op::Pipe, 2),
            ('|', _) => self.push_op(Op::Pipe, 1),
            (';', Some(';' | '&')) => self.push_op(Op::Semi, 2),
            (';', _) => self.push_op(Op::Semi, 1),
            ('(', _) => self.push_op(Op::Open, 1),
            (')', _) => self.push_op(Op::Close, 1),
            ('>', Some('>')) => self.push_redir(RedirKind::Append, false, 2),
            ('>', Some('&')) => self.push_redir(RedirKind::Dup, false, 2),
            ('>', Some('|')) => self.push_redir(RedirKind::Out, false, 2),
            ('>', _) => self.push_redir(RedirKind::Out, false, 1),
            ('<', Some('<')) if third == Some('<') => {
                self.push_redir(RedirKind::HereString, false, 3)
            }
            ('<', Some('<')) if third == Some('-') => self.push_redir(RedirKind::HereDoc, true, 3),
            ('<', Some('<')) => self.push_redir(RedirKind::HereDoc, false, 2),
            ('<', Some('&')) => self.push_redir(RedirKind::Dup, false, 2),
            ('<', Some('>')) => self.push_redir(RedirKind::In, false, 2),
            _ => self.push_redir(RedirKind::In, false, 1),
        }
    }

    fn single_quoted(&mut self) {
        self.word();
        let start = self.pos + 1;
        let mut end = start;
        while self.peek_at(end).is_some_and(|c| c != '\'') {
            end += 1;
        }
        let text = self.text(start, end);
        self.push_str(&text, true);
        self.pos = (end + 1).min(self.chars.len());
    }

    fn double_quoted(&mut self) {
        self.word();
        self.pos += 1;
        while let Some(c) = self.peek() {
            match c {
                '"' => {
                    self.pos += 1;
                    return;
                }
                '\\' => match self.peek_at(self.pos + 1) {
                    Some('\n') => self.pos += 2,
                    Some(n @ ('$' | '`' | '"' | '\\')) => {
                        self.push_str(&n.to_string(), true);
                        self.pos += 2;
                    }
                    _ => {
                        self.push_str("\\", true);
                        self.pos += 1;
                    }
                },
                '$' => self.dollar(true),
                '`' => self.backtick(true),
                _ => {
                    self.push_str(&c.to_string(), true);
                    self.pos += 1;
                }
            }
        }
    }

    /// Handles `$` at `self.pos`.
    fn dollar(&mut self, quoted: bool) {
        self.word();
        let next = self.peek_at(self.pos + 1);
        match next {
            Some('(') if self.peek_at(self.pos + 2) == Some('(') => {
                let (body, after) = self.paren_body(self.pos + 2);
                self.push_part(Part::Var {
                    name: String::new(),
                    quoted,
                    default: None,
                    scripts: substitutions_at(&body, true, self.nest + 1),
                    arith: Some(body),
                });
                self.pos = after;
            }
            Some('(') => {
                let (script, after) = self.paren_body(self.pos + 2);
                self.push_part(Part::Subst { script, quoted });
                self.pos = after;
            }
            Some('{') => self.braced_var(quoted),
            Some('\'') if !quoted => self.ansi_c_quoted(),
            Some('"') if !quoted => {
                self.pos += 1;
                self.double_quoted();
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let start = self.pos + 1;
                let mut end = start;
                while self
                    .peek_at(end)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    end += 1;
                }
                let name = self.text(start, end);
                self.push_part(Part::Var {
                    name,
                    quoted,
                    default: None,
                    scripts: Vec::new(),
                    arith: None,
                });
                self.pos = end;
            }
            Some(c) if c.is_ascii_digit() || "@*#?$!-".contains(c) => {
                self.push_part(Part::Var {
                    name: c.to_string(),
                    quoted,
                    default: None,
                    scripts: Vec::new(),
                    arith: None,
                });
                self.pos += 2;
            }
            _ => {
                self.push_str("$", quoted);
                self.pos += 1;
            }
        }
    }

    fn braced_var(&mut self, quoted: bool) {
        let start = self.pos + 2;
        let mut end = start;
        let mut depth = 1usize;
        while let Some(c) = self.peek_at(end) {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            end += 1;
        }
        let inner = self.text(start, end);
        self.pos = (end + 1).min(self.chars.len());
        let ident_len = inner
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(inner.len());
        let (name, rest) = inner.split_at(ident_len);
        let starts_ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
        let default = ["-", ":-", "=", ":="]
            .iter()
            .rev()
            .find_map(|op| rest.strip_prefix(op))
            .map(|d| d.trim_matches(|c| c == '"' || c == '\'').to_string());
        // Whatever the operator, substitutions in the operand may run.
        let scripts = if inner.contains(['$', '`']) {
            substitutions_at(rest, quoted, self.nest + 1)
        } else {
            Vec::new()
        };
        let part = if starts_ok && (rest.is_empty() || default.is_some()) && scripts.is_empty() {
            Part::Var {
                name: name.to_string(),
                quoted,
                default,
                scripts,
                arith: None,
            }
        } else {
            // `${#X}`, `${X%/}`, `${!X}`, `${X:-$(cmd)}` and friends: computed at run time.
            Part::Var {
                name: format!("{{{inner}}}"),
                quoted,
                default: None,
                scripts,
                arith: None,
            }
        };
        self.push_part(part);
    }

    /// `$'…'` with C escapes, a favourite for spelling `rm` as `$'\x72\x6d'`.
    fn ansi_c_quoted(&mut self) {
        let mut i = self.pos + 2;
        let mut out = String::new();
        while let Some(c) = self.peek_at(i) {
            match c {
                '\'' => {
                    i += 1;
                    break;
                }
                '\\' => {
                    let (decoded, used) = self.c_escape(i + 1);
                    out.push_str(&decoded);
                    i += 1 + used;
                }
                _ => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        self.push_str(&out, true);
        self.pos = i.min(self.chars.len());
    }

    /// Decodes the escape after a backslash at `i`; returns the text and chars used.
    fn c_escape(&self, i: usize) -> (String, usize) {
        let Some(c) = self.peek_at(i) else {
            return ("\\".to_string(), 0);
        };
        let simple = match c {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'e' | 'E' => Some('\x1b'),
            '\\' | '\'' | '"' | '?' => Some(c),
            _ => None,
        };
        if let Some(s) = simple {
            return (s.to_string(), 1);
        }
        let (radix, max, skip) = match c {
            'x' => (16, 2, 1),
            'u' => (16, 4, 1),
            'U' => (16, 8, 1),
            '0'..='7' => (8, 3, 0),
            _ => return (format!("\\{c}"), 1),
        };
        let mut digits = String::new();
        let mut j = i + skip;
        while digits.len() < max {
            match self.peek_at(j) {
                Some(d) if d.is_digit(radix) => {
                    digits.push(d);
                    j += 1;
                }
                _ => break,
            }
        }
        let decoded = u32::from_str_radix(&digits, radix)
            .ok()
            .and_then(char::from_u32)
            .map_or_else(|| format!("\\{c}"), |ch| ch.to_string());
        (decoded, j - i)
    }

    fn backtick(&mut self, quoted: bool) {
        self.word();
        let mut i = self.pos + 1;
        let mut script = String::new();
        while let Some(c) = self.peek_at(i) {
            match c {
                '`' => {
                    i += 1;
                    break;
                }
                '\\' => {
                    match self.peek_at(i + 1) {
                        Some(n @ ('`' | '\\' | '$')) => script.push(n),
                        Some(n) => {
                            script.push('\\');
                            script.push(n);
                        }
                        None => script.push('\\'),
                    }
                    i += 2;
                }
                _ => {
                    script.push(c);
                    i += 1;
                }
            }
        }
        self.push_part(Part::Subst { script, quoted });
        self.pos = i.min(self.chars.len());
    }

    /// From just after an opening parenthesis, finds the matching one. Returns the text
    /// between and the position after the closing parenthesis (the end when unbalanced).
    fn paren_body(&self, start: usize) -> (String, usize) {
        let mut depth = 1usize;
        let mut i = start;
        while let Some(c) = self.peek_at(i) {
            match c {
                '\\' => i += 1,
                '\'' => {
                    i += 1;
                    while self.peek_at(i).is_some_and(|c| c != '\'') {
                        i += 1;
                    }
                }
                '"' => {
                    i += 1;
                    while let Some(c) = self.peek_at(i) {
                        if c == '\\' {
                            i += 1;
                        } else if c == '"' {
                            break;
                        }
                        i += 1;
                    }
                }
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return (self.text(start, i), i + 1);
                    }
                }
                _ => {}
            }
            i += 1;
        }
        let end = self.chars.len();
        (self.text(start, end), end)
    }

    /// After a newline, reads the bodies of here-documents opened on the line.
    fn read_heredocs(&mut self) {
        for hd in std::mem::take(&mut self.heredocs) {
            let mut body = String::new();
            while self.pos < self.chars.len() {
                let start = self.pos;
                let mut end = start;
                while self.peek_at(end).is_some_and(|c| c != '\n') {
                    end += 1;
                }
                let line = self.text(start, end);
                self.pos = (end + 1).min(self.chars.len());
                let cmp = if hd.strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    &line
                };
                if cmp == hd.delim {
                    break;
                }
                body.push_str(&line);
                body.push('\n');
            }
            if let Some(Token::Redir(r)) = self.tokens.get_mut(hd.token) {
                r.body = Some(body);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders tokens compactly: words as their literal text (or `{raw}`), ops by name.
    fn show(src: &str) -> Vec<String> {
        tokenize(src)
            .into_iter()
            .map(|t| match t {
                Token::Word(w) => w.literal().unwrap_or_else(|| format!("{{{}}}", w.raw)),
                Token::Op(op) => format!("{op:?}"),
                Token::Redir(r) => format!(
                    "{:?}:{}",
                    r.kind,
                    r.target.and_then(|w| w.literal()).unwrap_or_default()
                ),
            })
            .collect()
    }

    #[test]
    fn splits_words_and_operators() {
        assert_eq!(
            show("a b&&c||d;e|f &\ng"),
            [
                "a", "b", "And", "c", "Or", "d", "Semi", "e", "Pipe", "f", "Amp", "Newline", "g"
            ]
        );
        assert_eq!(show("(a)"), ["Open", "a", "Close"]);
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(show(r#"'a b' "c d" e\ f"#), ["a b", "c d", "e f"]);
        assert_eq!(
            show(r#"\kubectl "kube"ctl 'x'"y"z"#),
            ["kubectl", "kubectl", "xyz"]
        );
        assert_eq!(show(r#""a \"q\" \$x \n""#), [r#"a "q" $x \n"#]);
        assert_eq!(show("''"), [""]);
        assert_eq!(show("a\\\nb"), ["ab"]);
        assert_eq!(show(r"$'\x72\x6d' -rf"), ["rm", "-rf"]);
        assert_eq!(show(r"$'\162m'"), ["rm"]);
    }

    #[test]
    fn comments_only_at_word_start() {
        assert_eq!(show("ls # rm -rf /\npwd"), ["ls", "Newline", "pwd"]);
        assert_eq!(show("echo a#b"), ["echo", "a#b"]);
    }

    #[test]
    fn variables_and_substitutions_are_parts() {
        let toks = tokenize(r#"kubectl delete ns $NS "${X:-prod}" $(date) `id` $((1+2)) ${#X}"#);
        let parts: Vec<&Part> = toks
            .iter()
            .filter_map(|t| match t {
                Token::Word(w) => w.parts.first(),
                _ => None,
            })
            .collect();
        assert!(matches!(parts[3], Part::Var { name, .. } if name == "NS"));
        assert!(
            matches!(parts[4], Part::Var { name, default: Some(d), quoted: true, .. } if name == "X" && d == "prod")
        );
        assert!(matches!(parts[5], Part::Subst { script, .. } if script == "date"));
        assert!(matches!(parts[6], Part::Subst { script, .. } if script == "id"));
        assert!(matches!(parts[7], Part::Var { name, .. } if name.is_empty()));
        assert!(matches!(parts[8], Part::Var { name, .. } if name == "{#X}"));
    }

    #[test]
    fn nested_substitution_keeps_inner_text() {
        let toks = tokenize(r#"echo "$(kubectl get ns "$(cat f)")" x"#);
        let Token::Word(w) = &toks[1] else {
            panic!("{toks:?}")
        };
        assert!(
            matches!(&w.parts[0], Part::Subst { script, quoted: true } if script == r#"kubectl get ns "$(cat f)""#)
        );
        assert_eq!(show(r#"echo "$(a)" x"#).len(), 3);
    }

    #[test]
    fn redirections_are_not_words() {
        assert_eq!(
            show("cmd > out 2>&1 < in >> log &> all"),
            ["cmd", "Out:out", "Dup:1", "In:in", "Append:log", "Out:all"]
        );
        assert_eq!(show("echo a>b"), ["echo", "a", "Out:b"]);
        assert_eq!(show("diff <(ls a) b"), ["diff", "{<(ls a)}", "b"]);
    }

    #[test]
    fn here_documents_and_strings() {
        let toks = tokenize("psql <<EOF\nDROP TABLE x;\nEOF\nls <<< 'hi'");
        let Token::Redir(r) = &toks[1] else {
            panic!("{toks:?}")
        };
        assert_eq!(r.kind, RedirKind::HereDoc);
        assert_eq!(r.body.as_deref(), Some("DROP TABLE x;\n"));
        assert_eq!(
            show("psql <<EOF\nx\nEOF\nls <<< 'hi'")[3..],
            ["ls", "HereString:hi"]
        );
        let toks = tokenize("cat <<-'END' | sh\n\trm -rf /\n\tEND\n");
        let Token::Redir(r) = &toks[1] else {
            panic!("{toks:?}")
        };
        assert_eq!(r.body.as_deref(), Some("\trm -rf /\n"));
        assert_eq!(toks[2], Token::Op(Op::Pipe));
    }

    #[test]
    fn arithmetic_and_expansion_operands_keep_their_substitutions() {
        assert_eq!(show("(( i++ )); x"), ["((", " i++ ", "Semi", "x"]);
        assert_eq!(show("((a); b)")[..2], ["Open", "Open"]);
        assert_eq!(
            show("echo ((x))"),
            ["echo", "Open", "Open", "x", "Close", "Close"]
        );
        assert_eq!(substitutions("a[$(date)]", false), ["date"]);
        assert_eq!(substitutions("${A:-${B:-`id`}}", false), ["id"]);
        assert_eq!(substitutions("'$(date)'", true), ["date"]);
        assert!(substitutions("'$(date)'", false).is_empty());
        let toks = tokenize("echo ${X:-$(date)} $(( $(id) + 1 ))");
        let scripts: Vec<Vec<String>> = toks
            .iter()
            .filter_map(|t| match t {
                Token::Word(w) => match w.parts.first() {
                    Some(Part::Var { scripts, .. }) => Some(scripts.clone()),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        assert_eq!(scripts, [vec!["date".to_string()], vec!["id".to_string()]]);
    }

    #[test]
    fn unbalanced_input_runs_to_the_end() {
        assert_eq!(show("echo 'abc"), ["echo", "abc"]);
        assert_eq!(show("echo \"abc"), ["echo", "abc"]);
        assert_eq!(show("echo $(ls"), ["echo", "{$(ls}"]);
        assert_eq!(show("echo ${X"), ["echo", "{${X}"]);
        assert_eq!(show("echo `ls"), ["echo", "{`ls}"]);
        assert_eq!(show("cat <<EOF\nno end"), ["cat", "HereDoc:EOF", "Newline"]);
        assert_eq!(show("echo \\"), ["echo", "\\"]);
        assert_eq!(show("a >"), ["a", "Out:"]);
        assert_eq!(show("$"), ["$"]);
    }
}
