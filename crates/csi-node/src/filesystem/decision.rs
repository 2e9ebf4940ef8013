//! The format decision, as a pure function of everything that was checked.
//!
//! Invariant: [`Decision::Format`] only when the probe said empty, a read of the device
//! succeeded, the serial matched, the volume has no content source, the controller vouched that
//! the volume never held data (publish_context `blank`) and the stage is not read-only. A probe
//! error, a partition table, an unknown or ambivalent signature, or a filesystem of another
//! type are never formatted. A probe finding no signature is not proof of an empty disk: raw
//! block data carries none.

use super::Probe;

/// What to do with a disk before mounting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Make a new filesystem of the requested type.
    Format,
    /// Mount the filesystem that is there (of this type).
    Mount(String),
    /// Touch nothing; the reason says why.
    Refuse(String),
}

/// The facts the decision rests on.
#[derive(Debug, Clone)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "each bool is one independent fact the decision table reads; no two form a state"
)]
pub struct Facts<'a> {
    /// The probe's result, or its error message.
    pub probe: Result<Probe, String>,
    /// Whether reading the device worked.
    pub read_ok: bool,
    /// Whether the disk's serial equals the volume's.
    pub serial_matched: bool,
    /// The volume's content source (`""` for a new empty volume).
    pub content_source: &'a str,
    /// The filesystem type the capability asks for.
    pub fs_type: &'a str,
    /// The controller says the volume provably never held data (publish_context `blank`).
    pub blank: bool,
    /// The stage is read-only (reader-only mode or a write-protected LUN): nothing may write.
    pub readonly: bool,
}

/// Decides whether to format, mount or refuse.
pub fn decide(facts: &Facts<'_>) -> Decision {
    if !facts.serial_matched {
        return Decision::Refuse("the disk's serial does not match the volume".into());
    }
    match &facts.probe {
        Err(e) => Decision::Refuse(format!(
            "probing the disk failed ({e}); never formatting on a probe error"
        )),
        Ok(Probe::PartitionTable(pt)) => Decision::Refuse(format!(
            "the disk holds a {pt} partition table; refusing to format or mount it"
        )),
        Ok(Probe::Other(what)) => {
            Decision::Refuse(format!("the disk holds {what}; refusing to format it"))
        }
        Ok(Probe::Ambivalent) => {
            Decision::Refuse("the disk holds conflicting signatures; refusing to format it".into())
        }
        Ok(Probe::Filesystem(found)) if found == facts.fs_type => Decision::Mount(found.clone()),
        Ok(Probe::Filesystem(found)) => Decision::Refuse(format!(
            "the disk already holds {found}, not the requested {}; refusing to reformat it",
            facts.fs_type
        )),
        Ok(Probe::Empty) if !facts.read_ok => Decision::Refuse(
            "the disk looks empty but could not be read; refusing to format it".into(),
        ),
        Ok(Probe::Empty) if !facts.content_source.is_empty() => Decision::Refuse(format!(
            "the volume was created from {} but shows no filesystem; refusing to format it",
            facts.content_source
        )),
        Ok(Probe::Empty) if facts.readonly => Decision::Refuse(
            "the disk shows no filesystem and the stage is read-only; refusing to format it".into(),
        ),
        Ok(Probe::Empty) if !facts.blank => Decision::Refuse(
            "the disk shows no filesystem signature but the controller does not vouch that the \
             volume never held data (it may hold raw data); refusing to format it"
                .into(),
        ),
        Ok(Probe::Empty) => Decision::Format,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(probe: Result<Probe, String>) -> Facts<'static> {
        Facts {
            probe,
            read_ok: true,
            serial_matched: true,
            content_source: "",
            fs_type: "ext4",
            blank: true,
            readonly: false,
        }
    }

    /// [`facts`] of `probe`, with `change` made to them.
    fn with(
        probe: Result<Probe, String>,
        change: impl FnOnce(&mut Facts<'static>),
    ) -> Facts<'static> {
        let mut f = facts(probe);
        change(&mut f);
        f
    }

    #[test]
    fn decision_table() {
        let fs = |t: &str| Ok(Probe::Filesystem(t.into()));
        let cases: Vec<(Facts<'static>, Option<Decision>)> = vec![
            (facts(Ok(Probe::Empty)), Some(Decision::Format)),
            (facts(fs("ext4")), Some(Decision::Mount("ext4".into()))),
            (facts(fs("xfs")), None),
            (facts(Ok(Probe::PartitionTable("gpt".into()))), None),
            (facts(Ok(Probe::PartitionTable("dos".into()))), None),
            (facts(Ok(Probe::Other("LVM2_member (raid)".into()))), None),
            (facts(Ok(Probe::Ambivalent)), None),
            (facts(Err("EIO".into())), None),
            (with(Ok(Probe::Empty), |f| f.read_ok = false), None),
            (with(Ok(Probe::Empty), |f| f.serial_matched = false), None),
            (with(fs("ext4"), |f| f.serial_matched = false), None),
            (
                with(Ok(Probe::Empty), |f| f.content_source = "snapshot:snap-x"),
                None,
            ),
            (with(Ok(Probe::Empty), |f| f.blank = false), None),
            (with(Ok(Probe::Empty), |f| f.readonly = true), None),
            (
                with(fs("ext4"), |f| (f.blank, f.readonly) = (false, true)),
                Some(Decision::Mount("ext4".into())),
            ),
            (
                with(fs("ext4"), |f| f.content_source = "volume:csi-x"),
                Some(Decision::Mount("ext4".into())),
            ),
        ];
        for (i, (f, want)) in cases.into_iter().enumerate() {
            let got = decide(&f);
            match want {
                Some(w) => assert_eq!(got, w, "case {i}"),
                None => assert!(matches!(got, Decision::Refuse(_)), "case {i}: {got:?}"),
            }
        }
    }
}
