//! `coffer completions SHELL` and `coffer man`: shell completions and man
//! pages generated from the command line's own definition, so they never
//! fall behind it.

use std::path::PathBuf;

use clap::Args;
use clap_complete::Shell;

use crate::error::{CliError, CliResult};

/// Print a completion script for a shell.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    shell: Shell,
}

/// Write man pages: coffer(1) and one per command (coffer-backup(1), …).
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The directory to write them into (created if missing), e.g.
    /// /usr/local/share/man/man1.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

/// Prints the completion script of `app` for the shell asked. Written
/// whole at the end: `coffer completions bash | head` must not panic.
pub fn completions(args: CompletionsArgs, mut app: clap::Command) {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut app, "coffer", &mut script);
    let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
}

/// Writes the man pages of `app` and its subcommands; lists them.
pub fn man(args: ManArgs, mut app: clap::Command) -> CliResult {
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| CliError::failure("io", format!("creating {}: {e}", args.dir.display())))?;
    // Building fills in each subcommand's display name (`coffer-backup`),
    // which is its page's name and title.
    app.build();
    let pages = write_pages(&app, &args.dir)?;
    let list: String = pages.iter().map(|p| format!("{}\n", p.display())).collect();
    let _ = std::io::Write::write_all(&mut std::io::stdout(), list.as_bytes());
    Ok(())
}

/// Writes `<display name>.1` for `cmd` and, recursively, for each subcommand.
fn write_pages(cmd: &clap::Command, dir: &std::path::Path) -> CliResult<Vec<PathBuf>> {
    let name = cmd.get_display_name().unwrap_or(cmd.get_name());
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .and_then(|()| std::fs::write(&path, &page))
        .map_err(|e| CliError::failure("io", format!("writing {}: {e}", path.display())))?;
    let mut written = vec![path];
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        written.extend(write_pages(sub, dir)?);
    }
    Ok(written)
}
