//! STUB (replaced by the storage branch): the API the pipeline codes against.
#![allow(dead_code, unused_variables)]
use std::path::{Path, PathBuf};

use super::virsh::Virsh;

#[derive(Clone)]
pub struct Storage {
    virsh: Virsh,
    pool: String,
    pool_path: PathBuf,
}
#[derive(Clone, Debug)]
pub struct Volume {
    pub name: String,
    pub path: PathBuf,
    pub capacity: u64,
    pub allocation: u64,
}
#[derive(Clone, Debug)]
pub struct Pushed {
    pub path: PathBuf,
    pub uploaded_bytes: u64,
    pub seconds: f64,
}
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("stub")]
    Stub,
}
impl StorageError {
    pub fn exit_code(&self) -> u8 {
        crate::exit::EXIT_FAILED
    }
}
impl Storage {
    pub fn new(virsh: Virsh, pool: &str, pool_path: &Path) -> Storage {
        Storage {
            virsh,
            pool: pool.into(),
            pool_path: pool_path.into(),
        }
    }
    pub async fn ensure_pool(&self) -> Result<PathBuf, StorageError> {
        Err(StorageError::Stub)
    }
    pub async fn volumes(&self) -> Result<Vec<Volume>, StorageError> {
        Err(StorageError::Stub)
    }
    pub async fn base(&self, digest: &str) -> Result<Option<PathBuf>, StorageError> {
        Err(StorageError::Stub)
    }
    pub async fn push_base(
        &self,
        local: &Path,
        digest: &str,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<Pushed, StorageError> {
        Err(StorageError::Stub)
    }
    pub async fn create_overlay(
        &self,
        name: &str,
        backing: &Path,
        capacity: u64,
    ) -> Result<PathBuf, StorageError> {
        Err(StorageError::Stub)
    }
    pub async fn upload(&self, name: &str, local: &Path) -> Result<PathBuf, StorageError> {
        Err(StorageError::Stub)
    }
    pub async fn download(&self, name: &str, to: &Path) -> Result<(), StorageError> {
        Err(StorageError::Stub)
    }
    pub async fn delete(&self, name: &str) -> Result<(), StorageError> {
        Err(StorageError::Stub)
    }
}
pub fn base_volume_name(digest: &str) -> String {
    format!("vnode-base-{digest}.qcow2")
}
