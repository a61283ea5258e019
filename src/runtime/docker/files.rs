//! A container's files as Fabric uploads them: one gzip'd tar extracted at
//! `/`, absolute names, each file with its mode and mtime 0.

use std::io::{self, Write};

use crate::runtime::File;

pub fn tarball(files: &[File]) -> io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for file in files {
        let mut header = tar::Header::new_ustar();
        // Absolute names, as the peer writes them; the tar crate's set_path
        // refuses those, so the name field is filled directly.
        let name = &mut header.as_old_mut().name;
        if file.path.len() > name.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("file name {} is longer than a tar name", file.path),
            ));
        }
        name[..file.path.len()].copy_from_slice(file.path.as_bytes());
        header.set_size(file.data.len() as u64);
        header.set_mode(0o100000 | file.mode);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        tar.append(&header, file.data.as_slice())?;
    }
    let mut gz = tar.into_inner()?;
    gz.flush()?;
    gz.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn each_file_keeps_its_absolute_name_mode_and_bytes() {
        let files = [
            File {
                path: "/etc/hyperledger/fabric/client.key".into(),
                mode: 0o644,
                data: b"key".to_vec(),
                secret: true,
            },
            File {
                path: "/etc/hyperledger/fabric/peer.crt".into(),
                mode: 0o644,
                data: b"root".to_vec(),
                secret: false,
            },
        ];
        let bytes = tarball(&files).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = String::from_utf8(entry.path_bytes().to_vec()).unwrap();
            assert_eq!(entry.header().mode().unwrap(), 0o100644, "{name}");
            assert_eq!(entry.header().mtime().unwrap(), 0, "{name}");
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            seen.push((name, data));
        }
        let wanted: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|f| (f.path.clone(), f.data.clone()))
            .collect();
        assert_eq!(seen, wanted);
    }
}
