//! Writing an export: age( zstd( tar ) ), manifest last.

use std::io::{self, Write};

use crate::{
    BackupInfo, ComponentHeader, ExportError, FORMAT, HashingWriter, MANIFEST, Manifest,
    ManifestComponent, Protection, ZSTD_LEVEL, component_path, io_err,
};

type Layers<W> = zstd::stream::write::Encoder<'static, age::stream::StreamWriter<W>>;

/// Writes an export: components one by one, then [`ExportWriter::finish`].
pub struct ExportWriter<W: Write> {
    tar: tar::Builder<Layers<W>>,
    components: Vec<ManifestComponent>,
}

impl<W: Write> ExportWriter<W> {
    /// Starts an export into `out`.
    pub fn new(out: W, protection: &Protection) -> Result<Self, ExportError> {
        let sealed = protection
            .encryptor()?
            .wrap_output(out)
            .map_err(io_err("writing the export header"))?;
        let zstd = zstd::stream::write::Encoder::new(sealed, ZSTD_LEVEL)
            .map_err(io_err("starting compression"))?;
        Ok(Self {
            tar: tar::Builder::new(zstd),
            components: Vec::new(),
        })
    }

    /// Adds one component of exactly `size` bytes, which `fill` writes.
    /// Writing fewer or more fails the export (a tar entry's size comes first).
    pub fn add_component(
        &mut self,
        c: ComponentHeader,
        size: u64,
        fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), ExportError> {
        let path = component_path(&c.name, &c.file_name).map_err(ExportError::Invalid)?;
        if self.components.iter().any(|m| m.name == c.name) {
            return Err(ExportError::Invalid(format!(
                "component {:?} added twice",
                c.name
            )));
        }
        let mut header = tar::Header::new_gnu();
        if path.len() > 100 {
            // The ustar name field holds 100 bytes; a PAX record holds any path.
            self.tar
                .append_pax_extensions([("path", path.as_bytes())])
                .map_err(io_err("writing the export"))?;
            let cut = (0..=100)
                .rev()
                .find(|&i| path.is_char_boundary(i))
                .unwrap_or(0);
            header
                .set_path(path[..cut].rsplit_once('/').map_or("long", |(a, _)| a))
                .map_err(io_err("writing the export"))?;
        } else {
            header
                .set_path(&path)
                .map_err(io_err("writing the export"))?;
        }
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(size);
        header.set_mode(0o600);
        header.set_mtime(0);
        header.set_cksum();
        let out = self.tar.get_mut();
        out.write_all(header.as_bytes())
            .map_err(io_err("writing the export"))?;
        let mut hashing = HashingWriter::new(&mut *out);
        fill(&mut hashing).map_err(io_err(format!("writing component {}", c.name)))?;
        let (_, written, sha256) = hashing.finish();
        if written != size {
            return Err(ExportError::Invalid(format!(
                "component {} gave {written} bytes instead of the announced {size}",
                c.name
            )));
        }
        let pad = (512 - size % 512) % 512;
        out.write_all(&[0u8; 512][..pad as usize])
            .map_err(io_err("writing the export"))?;
        self.components.push(ManifestComponent {
            name: c.name,
            kind: c.kind,
            content: c.content,
            file: path,
            size,
            sha256,
            sealed: c.sealed,
        });
        Ok(())
    }

    /// Writes the manifest and closes every layer; returns `out` and the manifest.
    pub fn finish(mut self, info: BackupInfo) -> Result<(W, Manifest), ExportError> {
        let manifest = Manifest {
            format: FORMAT.to_owned(),
            backup_id: info.backup_id,
            label: info.label,
            backup_created_at: info.created_at,
            exported_at: info.exported_at,
            coffer_version: env!("CARGO_PKG_VERSION").to_owned(),
            sensitive: info.sensitive,
            components: self.components,
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| ExportError::Invalid(format!("manifest: {e}")))?;
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(json.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(0);
        self.tar
            .append_data(&mut header, MANIFEST, json.as_slice())
            .map_err(io_err("writing the manifest"))?;
        let zstd = self
            .tar
            .into_inner()
            .map_err(io_err("closing the archive"))?;
        let sealed = zstd.finish().map_err(io_err("closing the compression"))?;
        let out = sealed.finish().map_err(io_err("closing the encryption"))?;
        Ok((out, manifest))
    }
}
