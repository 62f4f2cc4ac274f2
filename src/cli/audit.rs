//! `healthcore audit export | verify | restore`: the audit trail's closed months to archive files
//! and back. HealthCore never deletes an audit record; on PostgreSQL a month that is safely
//! archived may leave the table whole, as a detached partition the tables' owner then drops.
//!
//! An archive is `audit-events-YYYY-MM.jsonl.gz` (one record per line, as the API returns it, in
//! the order written) beside `audit-events-YYYY-MM.jsonl.gz.sha256` (`sha256sum -c` reads it).
//! Both are created readable by their owner only: audit records name patients and users.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use clap::Subcommand;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use super::progress;
use crate::app;
use crate::config::Config;
use crate::domain::audit::Month;
use crate::store::audit::{self, AuditEvent};
use crate::store::{Backend, Store};

/// Records read from the database per query, and written back per statement on restore.
const PAGE: u64 = 5_000;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Write every closed month before MONTH that still has records to an archive file, then
    /// verify the file against the database.
    Export {
        /// The first month not to export (YYYY-MM), at most the current month.
        #[arg(long)]
        before: String,
        /// Folder for the archive files.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// PostgreSQL: once a month's file is verified, detach its partition (as the tables' owner).
        #[arg(long)]
        detach: bool,
    },
    /// Check an archive file: its checksum, and that every line is an audit record of its month.
    Verify {
        /// The `.jsonl.gz` file.
        file: PathBuf,
    },
    /// Write an archive's records back into the audit trail (those still present are skipped).
    Restore {
        /// The `.jsonl.gz` file.
        file: PathBuf,
    },
}

pub async fn run(config: Config, command: AuditCommand) -> anyhow::Result<()> {
    let store = app::open_store(&config, &Default::default()).await?;
    let outcome = match command {
        AuditCommand::Export { before, dir, detach } => export(&store, &before, &dir, detach).await,
        AuditCommand::Verify { file } => {
            let (month, records) = verify_file(&file)?;
            println!("{}: {records} records of {month}, checksum matches", file.display());
            Ok(())
        }
        AuditCommand::Restore { file } => restore(&store, &file).await,
    };
    store.close().await;
    outcome
}

async fn export(store: &Store, before: &str, dir: &Path, detach: bool) -> anyhow::Result<()> {
    let before = Month::parse(before).with_context(|| format!("--before {before}: expected YYYY-MM"))?;
    let current = Month::of(crate::clock::now());
    ensure!(before <= current, "--before {before}: only closed months can be exported (this is {current})");
    ensure!(
        !detach || store.backend() == Backend::Postgres,
        "--detach: SQLite keeps the audit trail in one table, with no partition to detach"
    );
    let Some(oldest) = audit::oldest(store.db()).await? else {
        println!("the audit trail is empty");
        return Ok(());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut month = Month::of(oldest);
    while month < before {
        let count = audit::count_between(store.db(), month.start(), month.end()).await?;
        if count > 0 {
            let file = dir.join(format!("audit-events-{month}.jsonl.gz"));
            if file.exists() {
                println!("{month}: {} exists; verifying it against the database", file.display());
            } else {
                write_month(store, month, count, &file).await?;
            }
            let checksum = verify_against_database(store, month, count, &file).await?;
            println!("{month}: {count} records in {} (sha256 {checksum}), verified", file.display());
            if detach {
                let name = audit::partition_name(month);
                if audit::detach_partition(store.db(), month).await? {
                    println!("{month}: partition {name} detached; drop it once the archive is stored safely");
                } else {
                    println!("{month}: no attached partition {name} (its records are in audit_events_default)");
                }
            }
        }
        month = month.next();
    }
    Ok(())
}

/// Creates a file only its owner may read, refusing to replace one.
fn create_private(path: &Path) -> anyhow::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).with_context(|| format!("creating {}", path.display()))
}

fn checksum_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

fn sha256_of(file: &Path) -> anyhow::Result<String> {
    let mut reader = BufReader::new(File::open(file).with_context(|| format!("opening {}", file.display()))?);
    let mut hasher = Sha256::new();
    let mut buffer = [0; 64 * 1024];
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buffer[..read]);
    }
}

/// Writes a month's records to `file` (through a `.partial` file renamed when complete), then its
/// checksum file.
async fn write_month(store: &Store, month: Month, count: u64, file: &Path) -> anyhow::Result<()> {
    let partial = file.with_extension("gz.partial");
    let _ = std::fs::remove_file(&partial);
    let mut out = GzEncoder::new(BufWriter::new(create_private(&partial)?), Compression::default());
    let progress = progress::bar(count, &format!("{month} export"));
    let mut after = None;
    loop {
        let page = audit::page_between(store.db(), month.start(), month.end(), after, PAGE).await?;
        for record in &page {
            serde_json::to_writer(&mut out, record)?;
            out.write_all(b"\n")?;
        }
        progress.inc(page.len() as u64);
        match page.last() {
            Some(last) if page.len() as u64 == PAGE => after = Some(last.id),
            _ => break,
        }
    }
    progress.finish_and_clear();
    out.finish()?.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&partial, file)?;
    let name = file.file_name().and_then(|n| n.to_str()).context("an archive file name")?;
    let mut sums = create_private(&checksum_path(file))?;
    writeln!(sums, "{}  {name}", sha256_of(file)?)?;
    sums.sync_all()?;
    Ok(())
}

/// The month an archive's name says it holds.
fn month_of_file(file: &Path) -> anyhow::Result<Month> {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    name.strip_prefix("audit-events-")
        .and_then(|rest| rest.strip_suffix(".jsonl.gz"))
        .and_then(Month::parse)
        .with_context(|| format!("{}: not an archive name (audit-events-YYYY-MM.jsonl.gz)", file.display()))
}

/// An archive file being read: its checksum checked when opened, then each record checked (its
/// month, its order) as it is read.
struct Archive {
    file: PathBuf,
    month: Month,
    lines: std::io::Lines<BufReader<GzDecoder<File>>>,
    read: u64,
    previous: Option<uuid::Uuid>,
}

impl Archive {
    fn open(file: &Path) -> anyhow::Result<Archive> {
        let month = month_of_file(file)?;
        let sums = std::fs::read_to_string(checksum_path(file))
            .with_context(|| format!("reading {}", checksum_path(file).display()))?;
        let expected = sums.split_whitespace().next().unwrap_or_default();
        let actual = sha256_of(file)?;
        ensure!(expected == actual, "{}: checksum {actual} differs from the recorded {expected}", file.display());
        let lines = BufReader::new(GzDecoder::new(File::open(file)?)).lines();
        Ok(Archive { file: file.to_owned(), month, lines, read: 0, previous: None })
    }

    fn next_record(&mut self) -> anyhow::Result<Option<AuditEvent>> {
        let Some(line) = self.lines.next() else { return Ok(None) };
        let (file, number) = (self.file.display(), self.read + 1);
        let line = line.with_context(|| format!("{file}: unreadable after {} records", self.read))?;
        let record: AuditEvent =
            serde_json::from_str(&line).with_context(|| format!("{file}: line {number} is not an audit record"))?;
        let month = self.month;
        ensure!(
            (month.start()..month.end()).contains(&record.occurred_at),
            "{file}: line {number} is from {}, not {month}",
            record.occurred_at
        );
        ensure!(self.previous < Some(record.id), "{file}: line {number} is out of order");
        self.previous = Some(record.id);
        self.read = number;
        Ok(Some(record))
    }
}

fn verify_file(file: &Path) -> anyhow::Result<(Month, u64)> {
    let mut archive = Archive::open(file)?;
    while archive.next_record()?.is_some() {}
    Ok((archive.month, archive.read))
}

/// Verifies `file` and that it holds exactly the month's records in the database, in order,
/// reading both a page at a time; returns its checksum.
async fn verify_against_database(store: &Store, month: Month, count: u64, file: &Path) -> anyhow::Result<String> {
    let mut archive = Archive::open(file)?;
    let progress = progress::bar(count, &format!("{month} verify"));
    let mut after = None;
    loop {
        let page = audit::page_between(store.db(), month.start(), month.end(), after, PAGE).await?;
        for record in &page {
            let archived = archive.next_record()?;
            if archived.as_ref() != Some(record) {
                bail!("{}: record {} differs from the database's; keep the partition", file.display(), archive.read);
            }
        }
        progress.inc(page.len() as u64);
        match page.last() {
            Some(last) if page.len() as u64 == PAGE => after = Some(last.id),
            _ => break,
        }
    }
    progress.finish_and_clear();
    ensure!(archive.next_record()?.is_none(), "{}: holds more records than the database", file.display());
    sha256_of(file)
}

async fn restore(store: &Store, file: &Path) -> anyhow::Result<()> {
    // The whole file is checked before anything is written back.
    let (month, count) = verify_file(file)?;
    if store.backend() == Backend::Postgres {
        audit::ensure_partition(store.db(), month).await?;
    }
    let mut archive = Archive::open(file)?;
    let progress = progress::bar(count, &format!("{month} restore"));
    let mut written = 0;
    let mut batch = Vec::with_capacity(PAGE as usize);
    loop {
        let record = archive.next_record()?;
        let done = record.is_none();
        batch.extend(record);
        if batch.len() as u64 == PAGE || (done && !batch.is_empty()) {
            written += audit::restore(store.db(), &batch).await?;
            progress.inc(batch.len() as u64);
            batch.clear();
        }
        if done {
            break;
        }
    }
    progress.finish_and_clear();
    println!("{month}: {written} of {count} records written back ({} were present)", count - written);
    Ok(())
}
