//! A schedule as operators write it — a `[[schedules]]` entry of
//! coffer.toml or the body of `POST /api/v1/schedules` — and its
//! validation, which names the field at fault.
//!
//! ```toml
//! [[schedules]]
//! name = "palette"
//! label = "scheduled"
//! every_days = 2            # Palette's form: every N days…
//! hours_utc = [3, 15]       # …at these UTC hours
//! components = ["db", "files"]   # default: every component
//! target = "offsite"        # default: the default target
//! jitter_secs = 300         # start up to 5 minutes late, spread per schedule
//! catch_up_window_secs = 21600
//! export = { password = { env = "NIGHTLY_EXPORT_PASSWORD" }, keep = false }
//! retention = { keep_daily = 7, keep_weekly = 4, keep_monthly = 6 }
//! ```

use coffer_engine::PruneSettings;
use coffer_model::Label;
use coffer_model::secret::Secret;
use coffer_schedule::retention::Policy;
use coffer_schedule::{SignedDuration, Timestamp, When, WhenFields};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How late after downtime a due time may still run, by default: 6 h.
pub const DEFAULT_CATCH_UP_SECS: u64 = 6 * 3600;
/// The most a run may be delayed at random.
const MAX_JITTER_SECS: u64 = 24 * 3600;
/// The longest catch-up window.
const MAX_CATCH_UP_SECS: u64 = 30 * 24 * 3600;

/// A schedule: when, what, where, and what follows each backup.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// 1–64 characters of `[A-Za-z0-9_.-]`, not starting with `.`.
    pub name: String,
    /// What each run does: `backup` (default); `drill` — a restore drill of
    /// the newest READY backup with `label`; `check` — a check of `target`'s
    /// repository reading a rotating part of its packs; `prune` — a prune of
    /// `target`'s repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Task>,
    /// The label of its backups (default: the schedule's name, when that is
    /// a valid label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Components to back up (default: every configured one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<String>>,
    /// The target (default: the default target when each run starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Palette's form: every this many days (counted from `start`)…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_days: Option<u32>,
    /// …at each of these UTC hours (0–23).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours_utc: Option<Vec<u8>>,
    /// Or a cron expression (5 fields; 6–7 with seconds and years)…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// …read in this IANA time zone (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Or a plain interval in seconds (at least 60), counted from `start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_secs: Option<u64>,
    /// The UTC date (`YYYY-MM-DD`) `every_days` and `every_secs` count
    /// from (default: the day the schedule was created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Each run starts up to this many seconds late (default 0), the same
    /// delay for a given schedule and due time: schedules that share a due
    /// time spread out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_secs: Option<u64>,
    /// After downtime, a due time missed by less than this still runs,
    /// once (default 21600: 6 h); older ones are recorded `MISSED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up_window_secs: Option<u64>,
    /// Targets each READY backup is copied to (the same snapshots in a
    /// second repository, verified): the 3-2-1 rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_to: Option<Vec<String>>,
    /// `task = "check"`: every pack's content is read at least once in this
    /// many days (default 30): each run reads the next part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_all_every_days: Option<u32>,
    /// `task = "prune"`: the grace period of the packs it marks (default 23 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_secs: Option<u64>,
    /// An export made after every READY backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ScheduledExport>,
    /// What to keep of this schedule's backups; applied after each of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub retention: Option<Policy>,
    /// `false` pauses it: due times pass unrecorded until it is enabled again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// What a schedule's runs do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum Task {
    /// Take a backup.
    Backup,
    /// Drill the newest READY backup with the schedule's label.
    Drill,
    /// Check the target's repository.
    Check,
    /// Prune the target's repository.
    Prune,
}

impl TryFrom<String> for Task {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "backup" => Ok(Self::Backup),
            "drill" => Ok(Self::Drill),
            "check" => Ok(Self::Check),
            "prune" => Ok(Self::Prune),
            other => Err(format!(
                "task: {other:?} is not one of \"backup\", \"drill\", \"check\", \"prune\""
            )),
        }
    }
}

/// The export a schedule makes after each backup (Terraform Enterprise's
/// and Auth0's "backup with a password", on a timer).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduledExport {
    /// Encrypt with this password (in coffer.toml also `{ env = "VAR" }` or
    /// `{ file = "/path" }`; over the API only the password itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub password: Option<Secret>,
    /// Or to these age public keys (`age1…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_recipient: Option<Vec<String>>,
    /// Keep each export until it is deleted, whatever
    /// `server.export_ttl_secs` says.
    #[serde(default)]
    pub keep: bool,
}

/// A field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// The field, as written.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn fail(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        message: message.into(),
    }
}

/// A schedule's spec, checked and ready for the scheduler.
#[derive(Debug, Clone)]
pub struct Checked {
    /// When it is due.
    pub when: When,
    /// Its backups' label (a backup or drill schedule).
    pub label: Option<Label>,
    /// The largest random delay, in seconds.
    pub jitter_secs: u64,
    /// How late a due time may still run.
    pub catch_up: SignedDuration,
    /// Enabled.
    pub enabled: bool,
    /// What runs do.
    pub task: Task,
}

/// Whether `name` may name a schedule.
pub fn check_name(name: &str) -> Result<(), SpecError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(fail(
            "name",
            format!("{name:?}: 1 to 64 characters of A-Z a-z 0-9 _ . -, not starting with ."),
        ))
    }
}

impl ScheduleSpec {
    /// The timing fields, for the schedule crate.
    pub fn when_fields(&self) -> WhenFields {
        WhenFields {
            every_days: self.every_days,
            hours_utc: self.hours_utc.clone(),
            cron: self.cron.clone(),
            time_zone: self.time_zone.clone(),
            every_secs: self.every_secs,
            start: self.start.clone(),
        }
    }

    /// Validates everything that does not depend on the server's state
    /// (components, targets and the caller are checked by the service).
    /// `created` is the schedule's creation time: `start`'s default.
    pub fn check(&self, created: Timestamp) -> Result<Checked, SpecError> {
        check_name(&self.name)?;
        let when =
            When::parse(&self.when_fields(), created).map_err(|e| fail(e.field, e.message))?;
        let task = self.task.unwrap_or(Task::Backup);
        let label = match task {
            Task::Backup | Task::Drill => {
                let label_text = self.label.as_deref().unwrap_or(&self.name);
                Some(Label::new(label_text).map_err(|e| {
                    fail(
                        "label",
                        if self.label.is_none() {
                            format!(
                                "the name {label_text:?} is not a valid label ({e}): give a label"
                            )
                        } else {
                            e.to_string()
                        },
                    )
                })?)
            }
            Task::Check | Task::Prune => None,
        };
        if let Some(c) = &self.components {
            if c.is_empty() {
                return Err(fail(
                    "components",
                    "empty: leave it out to back up every component",
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            if let Some(dup) = c.iter().find(|n| !seen.insert(n.as_str())) {
                return Err(fail("components", format!("{dup:?} is named twice")));
            }
        }
        if let Some(c) = &self.copy_to {
            let mut seen = std::collections::BTreeSet::new();
            if let Some(dup) = c.iter().find(|n| !seen.insert(n.as_str())) {
                return Err(fail("copy_to", format!("{dup:?} is named twice")));
            }
            if c.is_empty() {
                return Err(fail("copy_to", "empty: leave it out for no copies"));
            }
            if let Some(t) = &self.target
                && c.contains(t)
            {
                return Err(fail(
                    "copy_to",
                    format!("{t:?} is the schedule's own target: a copy goes to another one"),
                ));
            }
        }
        let jitter_secs = self.jitter_secs.unwrap_or(0);
        if jitter_secs > MAX_JITTER_SECS {
            return Err(fail(
                "jitter_secs",
                format!("at most {MAX_JITTER_SECS} (a day)"),
            ));
        }
        let catch_up = self.catch_up_window_secs.unwrap_or(DEFAULT_CATCH_UP_SECS);
        if catch_up > MAX_CATCH_UP_SECS {
            return Err(fail(
                "catch_up_window_secs",
                format!("at most {MAX_CATCH_UP_SECS} (30 days)"),
            ));
        }
        if let Some(e) = &self.export {
            match (&e.password, &e.age_recipient) {
                (Some(_), None) => {}
                (None, Some(r)) if !r.is_empty() => {}
                _ => {
                    return Err(fail(
                        "export",
                        "give exactly one of password and age_recipient",
                    ));
                }
            }
        }
        if let Some(p) = &self.retention {
            p.validate()
                .map_err(|e| fail(format!("retention: {}", e.field), e.message))?;
        }
        let only = |field: &'static str, given: bool, task_name: &str, wanted: bool| {
            if given && !wanted {
                Err(fail(field, format!("only with task = \"{task_name}\"")))
            } else {
                Ok(())
            }
        };
        only(
            "read_all_every_days",
            self.read_all_every_days.is_some(),
            "check",
            task == Task::Check,
        )?;
        only(
            "grace_secs",
            self.grace_secs.is_some(),
            "prune",
            task == Task::Prune,
        )?;
        if self
            .grace_secs
            .is_some_and(|g| g > PruneSettings::MAX_GRACE_SECS)
        {
            return Err(fail(
                "grace_secs",
                format!("at most a year ({} s)", PruneSettings::MAX_GRACE_SECS),
            ));
        }
        if self.read_all_every_days == Some(0) {
            return Err(fail("read_all_every_days", "at least 1"));
        }
        if matches!(task, Task::Check | Task::Prune) {
            for (field, given) in [
                ("label", self.label.is_some()),
                ("copy_to", self.copy_to.is_some()),
                ("components", self.components.is_some()),
                ("export", self.export.is_some()),
                ("retention", self.retention.is_some()),
            ] {
                if given {
                    return Err(fail(
                        field,
                        "not with task = \"check\" or \"prune\" (they work on a whole \
                         repository: give `target`, or none for the default one)",
                    ));
                }
            }
        }
        if task == Task::Drill {
            if self.label.is_none() {
                return Err(fail(
                    "label",
                    "a drill schedule drills the newest READY backup with this label: give it",
                ));
            }
            for (field, given) in [
                ("copy_to", self.copy_to.is_some()),
                ("components", self.components.is_some()),
                ("target", self.target.is_some()),
                ("export", self.export.is_some()),
                ("retention", self.retention.is_some()),
            ] {
                if given {
                    return Err(fail(
                        field,
                        "not with task = \"drill\" (a drill restores a backup's components \
                         into scratch places; it writes no backup)",
                    ));
                }
            }
        }
        Ok(Checked {
            when,
            label,
            jitter_secs,
            catch_up: SignedDuration::from_secs(i64::try_from(catch_up).unwrap_or(i64::MAX)),
            enabled: self.enabled.unwrap_or(true),
            task,
        })
    }
}

/// The `[[schedules]]` of a coffer.toml, each checked; the error names the
/// entry and the field.
pub fn parse_schedules(value: Option<&toml::Value>) -> Result<Vec<ScheduleSpec>, String> {
    let Some(v) = value else {
        return Ok(Vec::new());
    };
    let toml::Value::Array(entries) = v else {
        return Err("schedules: write each as [[schedules]]".into());
    };
    let mut out: Vec<ScheduleSpec> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let name = entry
            .get("name")
            .and_then(toml::Value::as_str)
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        let spec: ScheduleSpec = entry.clone().try_into().map_err(|e: toml::de::Error| {
            format!("schedules[{i}]{name}: {}", e.message().trim())
        })?;
        spec.check(Timestamp::UNIX_EPOCH)
            .map_err(|e| format!("schedules[{i}]{name}: {e}"))?;
        if out.iter().any(|o| o.name == spec.name) {
            return Err(format!(
                "schedules[{i}]{name}: another schedule has this name"
            ));
        }
        out.push(spec);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<ScheduleSpec>, String> {
        let v: toml::Table = toml::from_str(text).unwrap();
        parse_schedules(v.get("schedules"))
    }

    #[test]
    fn palettes_form_and_cron_parse() {
        let s = parse(
            "[[schedules]]\nname = \"palette\"\nevery_days = 2\nhours_utc = [3, 15]\n\
             retention = { keep_days = 7 }\n\
             [[schedules]]\nname = \"nightly\"\ncron = \"30 2 * * *\"\ntime_zone = \"Europe/Berlin\"\n\
             export = { password = { env = \"PW\" }, keep = true }\n",
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].hours_utc.as_deref(), Some(&[3u8, 15][..]));
        assert_eq!(
            s[1].export.as_ref().unwrap().password,
            Some(Secret::Env("PW".into()))
        );
    }

    #[test]
    fn bad_input_names_the_field() {
        for (text, field) in [
            (
                "name = \"xyz\"\nevery_days = 1\nhours_utc = [24]",
                "hours_utc",
            ),
            (
                "name = \"xyz\"\nevery_days = 0\nhours_utc = [3]",
                "every_days",
            ),
            ("name = \"xyz\"\ncron = \"0 0 30 2 *\"", "cron"),
            (
                "name = \"xyz\"\nevery_secs = 3600\nretention = {}",
                "retention",
            ),
            (
                "name = \"xyz\"\nevery_secs = 3600\nretention = { keep_last = 0 }",
                "retention",
            ),
            ("name = \"xyz\"\nevery_secs = 3600\nhourly = true", "hourly"),
            (
                "name = \"xyz\"\nevery_secs = 3600\ncomponents = []",
                "components",
            ),
            (
                "name = \"xyz\"\nevery_secs = 3600\njitter_secs = 999999",
                "jitter_secs",
            ),
            (
                "name = \"xyz\"\nevery_secs = 3600\nexport = { keep = true }",
                "export",
            ),
            ("name = \"../x\"\nevery_secs = 3600", "name"),
            ("name = \"xyz\"\nevery_secs = 3600\nlabel = \"a\"", "label"),
            (
                "name = \"xyz\"\nevery_secs = 3600\ntask = \"drill\"",
                "label",
            ),
            (
                "name = \"xyz\"\nevery_secs = 3600\ntask = \"drill\"\nlabel = \"abc\"\ntarget = \"t\"",
                "target",
            ),
            (
                "name = \"xyz\"\nevery_secs = 3600\ntask = \"restore\"",
                "task",
            ),
            (
                "name = \"xyz\"\nevery_secs = 3600\ntask = \"prune\"\ntarget = \"t\"\ngrace_secs = 99999999999",
                "grace_secs",
            ),
        ] {
            let e = parse(&format!("[[schedules]]\n{text}\n")).unwrap_err();
            assert!(e.contains(field), "{text}: {e}");
        }
        let e = parse(
            "[[schedules]]\nname = \"abc\"\nevery_secs = 60\n[[schedules]]\nname = \"abc\"\nevery_secs = 60\n",
        )
        .unwrap_err();
        assert!(e.contains("another schedule has this name"), "{e}");
    }
}
