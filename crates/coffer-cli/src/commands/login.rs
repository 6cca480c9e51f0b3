//! `coffer login URL` and `coffer logout`: saving and forgetting the
//! credentials the client commands use (`client::contexts`).

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use crate::client::contexts::{self, Context, Contexts};
use crate::client::{Client, Tls, normalize_url};
use crate::error::{CliError, CliResult};
use crate::exit::ExitCode;
use crate::output::Output;
use crate::password;

/// Log in to a Coffer server (talks to the server).
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The server, e.g. https://backup.example.com:8420.
    url: String,
    /// Log in as this user; the password comes from --password-file,
    /// COFFER_LOGIN_PASSWORD or the terminal.
    #[arg(long, conflicts_with = "token")]
    name: Option<String>,
    /// The user's password: the first line of this file.
    #[arg(long, requires = "name")]
    password_file: Option<PathBuf>,
    /// Log in with an API token (`cft_…`) instead, read from standard input
    /// or asked on the terminal — never given on the command line.
    #[arg(long)]
    token: bool,
    /// Save the login under this name and make it the current one.
    #[arg(long, default_value = "default")]
    context: String,
    /// Trust a server certificate signed by this CA (PEM), e.g. a private CA's.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Do not check the server's TLS certificate at all (for a first look
    /// at a test server; anyone on the path can then read the credentials).
    #[arg(long)]
    insecure: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Forget the credentials of a login (the server's URL stays).
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The context (default: the current one).
    #[arg(long)]
    context: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn login(args: LoginArgs, out: Output) -> CliResult {
    let url = normalize_url(&args.url)?;
    if args.context.is_empty() {
        return Err(CliError::usage("--context: give a name"));
    }
    let tls = Tls {
        ca_file: args.ca_file.clone(),
        insecure: args.insecure,
    };
    let anonymous = Client::new(&url, None, &tls)?;
    // Is it there, and is it Coffer? One line naming the URL if not.
    anonymous.get("/healthz")?;
    let mut ctx = Context {
        url: url.clone(),
        ca_file: args.ca_file.map(|p| std::path::absolute(&p).unwrap_or(p)),
        insecure: args.insecure,
        ..Context::default()
    };
    if args.token {
        let token = read_token()?;
        let client = Client::new(&url, Some(token.clone()), &tls)?;
        // Any route tells a bad token (401) from a good one; a token
        // without `backups:read` gets 403 here and is still a good token.
        match client.get("/api/v1/components") {
            Ok(_) => {}
            Err(e) if e.exit_code() == ExitCode::Forbidden => {}
            Err(e) => return Err(e),
        }
        ctx.token = Some(token);
    } else {
        let Some(name) = args.name else {
            return Err(CliError::usage(
                "give --name USER (a user's login) or --token (an API token on standard input)",
            ));
        };
        let pw = password::read_from(
            args.password_file.as_deref(),
            "COFFER_LOGIN_PASSWORD",
            &format!("Password of {name} at {url}: "),
        )
        .map_err(|e| CliError::usage(format!("{e:#}")))?;
        let answer = anonymous.post(
            "/api/v1/auth/login",
            Some(&json!({ "name": name, "password": pw })),
        )?;
        let Some(token) = answer.value["token"].as_str() else {
            return Err(CliError::failure(
                "bad_answer",
                format!("{url} answered the login without a token: is it a Coffer server?"),
            ));
        };
        ctx.token = Some(format!("jwt:{token}"));
        ctx.expires_at = answer.value["expires_at"].as_str().map(str::to_owned);
        ctx.user = Some(name);
    }
    let path = contexts::path()?;
    let mut all = Contexts::load(&path)?;
    let shown = json!({
        "context": args.context.clone(),
        "url": url.clone(),
        "user": ctx.user.clone(),
        "expires_at": ctx.expires_at.clone(),
        "contexts_file": path.clone(),
    });
    all.contexts.insert(args.context.clone(), ctx);
    all.current = Some(args.context);
    all.save(&path)?;
    out.result(&shown, |v| {
        let who = v["user"]
            .as_str()
            .map_or("with an API token".to_owned(), |u| format!("as {u}"));
        let until = v["expires_at"]
            .as_str()
            .map_or(String::new(), |t| format!(", until {t}"));
        format!(
            "logged in to {} {who} (context {}{until})",
            v["url"].as_str().unwrap_or(""),
            v["context"].as_str().unwrap_or("")
        )
    });
    Ok(())
}

pub fn logout(args: LogoutArgs, out: Output) -> CliResult {
    let path = contexts::path()?;
    let mut all = Contexts::load(&path)?;
    let Some(name) = args.context.or_else(|| all.current.clone()) else {
        return Err(CliError::usage("not logged in anywhere"));
    };
    let Some(ctx) = all.contexts.get_mut(&name) else {
        return Err(CliError::usage(format!(
            "no context {name:?} in {}",
            path.display()
        )));
    };
    ctx.token = None;
    ctx.expires_at = None;
    let url = ctx.url.clone();
    all.save(&path)?;
    out.result(&json!({ "context": name, "url": url }), |_| {
        format!("logged out of {url} (context {name}); the server's URL is kept")
    });
    Ok(())
}

/// The API token, from standard input when it is not a terminal, else asked.
fn read_token() -> CliResult<String> {
    let token = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("API token: ")
            .map_err(|e| CliError::usage(format!("reading the token: {e}")))?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::usage(format!("reading the token from standard input: {e}")))?;
        line
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err(CliError::usage("--token: no token on standard input"));
    }
    Ok(token)
}
