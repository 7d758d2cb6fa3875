//! Where media bytes are kept: [`MediaStorage`], and [`LocalStorage`] on
//! the local filesystem (the default, under `<data_dir>/media`).

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// A medium's bytes, as they are read.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// Keeps media bytes under keys it chooses.
pub trait MediaStorage: Send + Sync {
    /// Stores medium `id`'s bytes; answers the key to read them back with.
    /// Either all of them are stored or nothing is.
    fn put(&self, id: Uuid, bytes: Bytes) -> impl Future<Output = io::Result<String>> + Send;

    /// The bytes stored under `key`.
    fn get(&self, key: &str) -> impl Future<Output = io::Result<ByteStream>> + Send;

    /// Forgets the bytes under `key` (nothing to forget is not an error).
    fn delete(&self, key: &str) -> impl Future<Output = io::Result<()>> + Send;
}

/// Media as files in one directory, each named by its medium's id (never
/// by the uploaded name).
#[derive(Clone, Debug)]
pub struct LocalStorage {
    root: PathBuf,
}

/// Size of the chunks a stored file is read in.
const CHUNK: usize = 64 * 1024;

impl LocalStorage {
    /// Files under `root` (created on the first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The storage of an installation: `<data_dir>/media`.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self::new(data_dir.join("media"))
    }

    /// The file of `key`; a key that is not one we issued (an id) names no
    /// file, so no key can reach outside the directory.
    fn path(&self, key: &str) -> io::Result<PathBuf> {
        let id = Uuid::parse_str(key)
            .map_err(|_| io::Error::new(io::ErrorKind::NotFound, "not a media key"))?;
        Ok(self.root.join(id.to_string()))
    }
}

impl MediaStorage for LocalStorage {
    async fn put(&self, id: Uuid, bytes: Bytes) -> io::Result<String> {
        tokio::fs::create_dir_all(&self.root).await?;
        let key = id.to_string();
        // Written aside and renamed into place: a reader never sees half a
        // file, and a crash leaves only a stray temporary file.
        let temporary = self.root.join(format!(".{key}.part"));
        let written = async {
            let mut file = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temporary)
                .await?;
            file.write_all(&bytes).await?;
            file.sync_all().await?;
            tokio::fs::rename(&temporary, self.root.join(&key)).await
        }
        .await;
        if let Err(err) = written {
            let _ = tokio::fs::remove_file(&temporary).await;
            return Err(err);
        }
        Ok(key)
    }

    async fn get(&self, key: &str) -> io::Result<ByteStream> {
        let file = tokio::fs::File::open(self.path(key)?).await?;
        let chunks = futures::stream::try_unfold(file, |mut file| async move {
            let mut buffer = vec![0; CHUNK];
            let read = file.read(&mut buffer).await?;
            if read == 0 {
                return Ok(None);
            }
            buffer.truncate(read);
            Ok(Some((Bytes::from(buffer), file)))
        });
        Ok(Box::pin(chunks))
    }

    async fn delete(&self, key: &str) -> io::Result<()> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;

    use super::*;

    #[tokio::test]
    async fn stores_reads_back_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::in_data_dir(dir.path());
        let id = Uuid::now_v7();
        let content = Bytes::from(vec![42u8; 200_000]);

        let key = storage.put(id, content.clone()).await.unwrap();
        let read: Vec<Bytes> = storage
            .get(&key)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();

        assert_eq!(read.concat(), content);
        assert!(dir.path().join("media").join(id.to_string()).is_file());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("media"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
        storage.delete(&key).await.unwrap();
        storage.delete(&key).await.unwrap();
        assert_eq!(
            storage.get(&key).await.err().map(|e| e.kind()),
            Some(io::ErrorKind::NotFound)
        );
    }

    #[tokio::test]
    async fn keys_that_are_not_ids_reach_no_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret.key"), "x").unwrap();
        let storage = LocalStorage::in_data_dir(dir.path());

        let err = storage.get("../secret.key").await.err().unwrap();

        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(storage.delete("../secret.key").await.is_err());
        assert!(dir.path().join("secret.key").exists());
    }
}
