//! A scripted [`CommandRunner`] for tests: checks each argv against the next expectation, in
//! order, and replays captured output.
//!
//! Invariant: an unexpected or out-of-order command fails the test (it is returned as an error
//! *and* recorded, and [`ScriptedRunner::finish`] panics on any mismatch or leftover).

use super::{BoxFuture, Cmd, CommandError, CommandRunner, Output};
use std::{collections::VecDeque, sync::Mutex};

/// One expected command and what it answers.
#[derive(Debug, Clone)]
pub struct Expectation {
    argv: Vec<String>,
    stdin: Option<String>,
    answer: Result<(i32, String, String), CommandError>,
    delay: std::time::Duration,
}

impl Expectation {
    /// Expects `argv` (program first) exactly; answers exit 0 with empty output by default.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            stdin: None,
            answer: Ok((0, String::new(), String::new())),
            delay: std::time::Duration::ZERO,
        }
    }

    /// Expects exactly the argv `cmd` runs ([`crate::testing::argv`]).
    pub fn of(cmd: &Cmd) -> Self {
        Self::new(crate::testing::argv(cmd))
    }

    /// Also expects this exact stdin.
    #[must_use]
    pub fn stdin(mut self, stdin: impl Into<String>) -> Self {
        self.stdin = Some(stdin.into());
        self
    }

    /// Answers exit 0 with `stdout`.
    #[must_use]
    pub fn stdout(mut self, stdout: impl Into<String>) -> Self {
        self.answer = Ok((0, stdout.into(), String::new()));
        self
    }

    /// Answers exit `code` with `stderr`.
    #[must_use]
    pub fn fails(mut self, code: i32, stderr: impl Into<String>) -> Self {
        self.answer = Ok((code, String::new(), stderr.into()));
        self
    }

    /// Answers only after `delay` (a command still running while other calls arrive); the
    /// expectation is consumed when the command starts, so later commands match the rest.
    #[must_use]
    pub fn delay(mut self, delay: std::time::Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Answers with a runner error (timeout, missing tool).
    #[must_use]
    pub fn error(mut self, error: CommandError) -> Self {
        self.answer = Err(error);
        self
    }
}

#[derive(Debug, Default)]
struct State {
    expected: VecDeque<Expectation>,
    ran: Vec<Vec<String>>,
    mismatches: Vec<String>,
}

/// The fake runner. Script it with [`ScriptedRunner::expect`]; check it with
/// [`ScriptedRunner::finish`].
#[derive(Debug, Default)]
pub struct ScriptedRunner {
    state: Mutex<State>,
}

impl ScriptedRunner {
    /// A runner expecting nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an expectation.
    pub fn expect(&self, expectation: Expectation) -> &Self {
        self.state
            .lock()
            .expect("fake state")
            .expected
            .push_back(expectation);
        self
    }

    /// Every argv run so far (secrets included: this is a test double).
    pub fn ran(&self) -> Vec<Vec<String>> {
        self.state.lock().expect("fake state").ran.clone()
    }

    /// Panics unless every expectation was met, in order, and nothing unexpected ran.
    pub fn finish(&self) {
        let state = self.state.lock().expect("fake state");
        assert!(
            state.mismatches.is_empty(),
            "unexpected commands:\n{}",
            state.mismatches.join("\n")
        );
        assert!(
            state.expected.is_empty(),
            "expected commands never ran:\n{}",
            state
                .expected
                .iter()
                .map(|e| e.argv.join(" "))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

impl CommandRunner for ScriptedRunner {
    fn run<'a>(&'a self, cmd: &'a Cmd) -> BoxFuture<'a, Result<Output, CommandError>> {
        let argv: Vec<String> = std::iter::once(cmd.program().to_string())
            .chain(cmd.arg_values().map(str::to_string))
            .collect();
        let mut state = self.state.lock().expect("fake state");
        state.ran.push(argv.clone());
        let delay = state
            .expected
            .front()
            .map_or(std::time::Duration::ZERO, |e| e.delay);
        let result = match state.expected.pop_front() {
            Some(exp)
                if exp.argv == argv
                    && (exp.stdin.is_none() || exp.stdin.as_deref() == cmd.stdin_value()) =>
            {
                exp.answer.map(|(code, stdout, stderr)| Output {
                    command: cmd.redacted(),
                    code: Some(code),
                    stdout: cmd.scrub(&stdout),
                    stderr: cmd.scrub(&stderr),
                })
            }
            Some(exp) => {
                let msg = format!(
                    "expected: {}\n     got: {}{}",
                    exp.argv.join(" "),
                    argv.join(" "),
                    if exp.argv == argv {
                        format!(
                            "\n  stdin expected {:?}, got {:?}",
                            exp.stdin,
                            cmd.stdin_value()
                        )
                    } else {
                        String::new()
                    }
                );
                state.mismatches.push(msg.clone());
                state.expected.push_front(exp);
                Err(CommandError::Spawn {
                    command: cmd.redacted(),
                    reason: msg,
                })
            }
            None => {
                let msg = format!("unexpected command: {}", argv.join(" "));
                state.mismatches.push(msg.clone());
                Err(CommandError::Spawn {
                    command: cmd.redacted(),
                    reason: msg,
                })
            }
        };
        drop(state);
        if delay.is_zero() {
            return Box::pin(std::future::ready(result));
        }
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replays_in_order_and_checks_argv() {
        let fake = ScriptedRunner::new();
        fake.expect(Expectation::new(["lvs", "vg"]).stdout("{}"));
        fake.expect(Expectation::new(["lvremove", "vg/x"]).fails(5, "busy"));
        let out = fake.run(&Cmd::new("lvs").arg("vg")).await.unwrap();
        assert_eq!(out.stdout, "{}");
        let out = fake.run(&Cmd::new("lvremove").arg("vg/x")).await.unwrap();
        assert_eq!(out.code, Some(5));
        fake.finish();
    }

    #[tokio::test]
    #[should_panic(expected = "unexpected commands")]
    async fn wrong_argv_fails_the_test() {
        let fake = ScriptedRunner::new();
        fake.expect(Expectation::new(["lvs", "vg"]));
        assert!(fake.run(&Cmd::new("lvs").arg("other")).await.is_err());
        fake.finish();
    }

    #[tokio::test]
    #[should_panic(expected = "never ran")]
    async fn unmet_expectation_fails_the_test() {
        let fake = ScriptedRunner::new();
        fake.expect(Expectation::new(["lvs"]));
        fake.finish();
    }
}
