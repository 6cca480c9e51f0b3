//! `coffer repo validate`: the target's probe, step by step. Needs no
//! password.

use coffer_targets::OpenTarget;
use coffer_targets::validate::ValidateOptions;

use crate::commands::Outcome;
use crate::error::CliResult;
use crate::output::Output;

/// Probes the target and prints every step; a failed step is a verdict
/// (exit 1) shown in the report, not an error message.
pub fn run(target: &OpenTarget, out: Output) -> CliResult<Outcome> {
    let report = target.validate(ValidateOptions::default());
    out.result(&report, |r| {
        let mut s = format!("validating {}\n", r.location);
        for step in &r.steps {
            s.push_str(&format!(
                "{:<8} {:<40} {:>6} ms  {}\n",
                format!("{:?}", step.status).to_lowercase(),
                step.name,
                step.duration_ms,
                step.message
            ));
        }
        s.push_str(if r.ok {
            "the target can be used"
        } else {
            "the target CANNOT be used as it is"
        });
        s
    });
    Ok(if report.ok {
        Outcome::Done
    } else {
        Outcome::Failed
    })
}
