//! The `virt-install --import` command that defines and starts one node, as typed values.
//!
//! [`VirtInstall::argv`] renders it into an argument vector for `std::process::Command`; nothing
//! goes through a shell. The choices below come from real boots (see the lab notes):
//! - the seed ISO is a read-only cdrom on **virtio-scsi** (`bus=scsi`): q35's default SATA cdrom
//!   is invisible to Debian's cloud kernel (no AHCI driver), and cloud-init then silently falls
//!   back to no datasource;
//! - under TCG (`--virt-type qemu`) qemu's translation-block cache is capped at 128 MiB, which
//!   cut qemu's RSS per guest from ~1.15 GiB to ~0.41 GiB with no slower boot;
//! - the serial console stays a pty (so `virsh console` works) and is also logged to a file;
//! - the domain's `<description>` marks it as vnode's (see [`DomainMetadata`]): virt-install's
//!   `--xml` XPath edits cannot create elements in a namespace of our own, so a namespaced
//!   `<metadata>` child is out of reach without a second libvirt call.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use std::time::Duration;

use crate::config::VirtType;
use crate::config::virt_install_args::own;
use crate::plan::mac::Mac;
use crate::plan::planned_node::PlannedNode;

/// How guests are accelerated: a resolved [`VirtType`] (never `auto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    /// Software emulation: `--virt-type qemu`.
    Tcg,
}

impl Accel {
    /// `None` for [`VirtType::Auto`], which must be resolved by probing the host first.
    pub fn from_virt_type(v: VirtType) -> Option<Accel> {
        match v {
            VirtType::Kvm => Some(Accel::Kvm),
            VirtType::Qemu => Some(Accel::Tcg),
            VirtType::Auto => None,
        }
    }

    /// The config's name for it.
    pub fn virt_type(self) -> VirtType {
        match self {
            Accel::Kvm => VirtType::Kvm,
            Accel::Tcg => VirtType::Qemu,
        }
    }

    pub fn virt_type_arg(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "qemu",
        }
    }
}

/// Where a NIC is plugged in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "name")]
pub enum NetSource {
    /// A libvirt network (the private NIC).
    Network(String),
    /// A host bridge (the public NIC).
    Bridge(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NicSpec {
    pub source: NetSource,
    pub mac: Mac,
}

impl NicSpec {
    fn arg(&self) -> String {
        let (kind, name) = match &self.source {
            NetSource::Network(n) => ("network", n),
            NetSource::Bridge(b) => ("bridge", b),
        };
        format!("{kind}={name},model=virtio,mac={}", self.mac)
    }
}

/// What marks a domain as vnode's, kept in the domain's `<description>` as one line:
/// `vnode:v1 pool=vnode number=3 image=debian-12`. `vnode list` reads it back with
/// [`DomainMetadata::from_description`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DomainMetadata {
    pub pool: String,
    pub number: u32,
    pub image: String,
}

const DESCRIPTION_TAG: &str = "vnode:v1";

impl DomainMetadata {
    pub fn from_description(text: &str) -> Option<DomainMetadata> {
        let mut words = text.split_whitespace();
        if words.next()? != DESCRIPTION_TAG {
            return None;
        }
        let (mut pool, mut number, mut image) = (None, None, None);
        for word in words {
            match word.split_once('=')? {
                ("pool", v) => pool = Some(v.to_string()),
                ("number", v) => number = Some(v.parse().ok()?),
                ("image", v) => image = Some(v.to_string()),
                _ => {} // a later version's field
            }
        }
        Some(DomainMetadata {
            pool: pool?,
            number: number?,
            image: image?,
        })
    }
}

impl fmt::Display for DomainMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{DESCRIPTION_TAG} pool={} number={} image={}",
            self.pool, self.number, self.image
        )
    }
}

/// One node's `virt-install --import` command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VirtInstall {
    /// libvirt URI (`--connect`).
    pub connect: String,
    pub name: String,
    pub memory_mib: u32,
    pub vcpus: u32,
    /// An id the host's osinfo-db knows (see [`super::osinfo`]).
    pub osinfo: String,
    /// The node's qcow2 overlay.
    pub disk: PathBuf,
    /// The NoCloud seed ISO.
    pub seed: PathBuf,
    /// First NIC: the pool's private libvirt network.
    pub private_nic: NicSpec,
    /// Second NIC: the pool's public bridge.
    pub public_nic: NicSpec,
    pub console_log: PathBuf,
    pub accel: Accel,
    /// Under TCG, the translation-block cache in MiB.
    pub tb_cache_mib: u32,
    pub metadata: DomainMetadata,
    /// The config's `virt_install_args`, after vnode's own (a later option wins).
    pub extra_args: Vec<String>,
}

/// The TCG translation cache vnode asks for (qemu 7.2's default is 1 GiB).
pub const TB_CACHE_MIB: u32 = 128;

/// The files a domain is made of (a node's overlay, seed and console log).
#[derive(Clone, Debug)]
pub struct DomainFiles {
    pub disk: PathBuf,
    pub seed: PathBuf,
    pub console_log: PathBuf,
}

/// Why virt-install did not define and start the domain.
#[derive(Debug, thiserror::Error)]
pub enum VirtInstallError {
    #[error("cannot run virt-install ({0}); install the virtinst package")]
    Spawn(#[source] std::io::Error),
    #[error("virt-install failed: {last_line}")]
    Failed {
        /// virt-install's last line of stderr, its own words.
        last_line: String,
        attempts: u32,
    },
}

/// How often a transient define error is retried, and the first pause (doubled each time).
const ATTEMPTS: u32 = 5;
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(200);

impl VirtInstall {
    /// The command that defines and starts `node` from `files` on the libvirt at `uri`.
    pub fn for_node(
        node: &PlannedNode,
        uri: &str,
        files: DomainFiles,
        osinfo: &str,
        accel: Accel,
        extra_args: &[String],
    ) -> VirtInstall {
        VirtInstall {
            connect: uri.to_string(),
            name: node.name(),
            memory_mib: node.resources.memory_mib,
            vcpus: node.resources.vcpus,
            osinfo: osinfo.to_string(),
            disk: files.disk,
            seed: files.seed,
            private_nic: NicSpec {
                source: NetSource::Network(node.id.network.clone()),
                mac: node.id.private_mac,
            },
            public_nic: NicSpec {
                source: NetSource::Bridge(node.id.bridge.clone()),
                mac: node.id.public_mac,
            },
            console_log: files.console_log,
            accel,
            tb_cache_mib: TB_CACHE_MIB,
            metadata: DomainMetadata {
                pool: node.id.pool.clone(),
                number: node.id.number,
                image: node.image.name.clone(),
            },
            extra_args: extra_args.to_vec(),
        }
    }

    /// Runs virt-install to define and start the domain. Parallel virt-install runs can race on
    /// libvirt storage pools ("asynchronous jobs running"); vnode hands it existing files, which
    /// avoids most of that, and retries the rest. virt-install is killed if the caller stops
    /// waiting (Ctrl-C, a cancelled node).
    pub async fn run(&self) -> Result<u32, VirtInstallError> {
        self.run_program("virt-install".as_ref()).await
    }

    /// [`VirtInstall::run`] with another virt-install program; the number of attempts it took.
    pub async fn run_program(&self, program: &std::ffi::OsStr) -> Result<u32, VirtInstallError> {
        let mut delay = FIRST_RETRY_DELAY;
        for attempt in 1..=ATTEMPTS {
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(self.argv()).env("LC_ALL", "C");
            let out = crate::process::exec::run(&mut cmd)
                .await
                .map_err(VirtInstallError::Spawn)?;
            if out.status.success() {
                return Ok(attempt);
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            if is_transient(&stderr) && attempt < ATTEMPTS {
                crate::process::debug_log::retry(
                    &format!("virt-install of {}", self.name),
                    attempt + 1,
                    ATTEMPTS,
                    &stderr.trim(),
                );
                tokio::time::sleep(delay).await;
                delay *= 2;
                continue;
            }
            return Err(VirtInstallError::Failed {
                last_line: stderr
                    .trim()
                    .lines()
                    .last()
                    .unwrap_or("(no message)")
                    .to_string(),
                attempts: attempt,
            });
        }
        unreachable!("the last attempt returns")
    }

    /// The arguments after `virt-install`.
    pub fn argv(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::with_capacity(40);
        let mut push = |k: &str, v: OsString| {
            a.push(k.into());
            a.push(v);
        };
        push(
            own::CONNECT,
            super::ssh_mux::transport_uri(&self.connect).into(),
        );
        push(own::NAME, self.name.clone().into());
        push("--memory", self.memory_mib.to_string().into());
        push("--vcpus", self.vcpus.to_string().into());
        push("--osinfo", self.osinfo.clone().into());
        push(
            "--disk",
            path_option("path=", &self.disk, ",format=qcow2,bus=virtio"),
        );
        push(
            "--disk",
            path_option("path=", &self.seed, ",device=cdrom,bus=scsi,readonly=on"),
        );
        push("--network", self.private_nic.arg().into());
        push("--network", self.public_nic.arg().into());
        push("--graphics", "none".into());
        // The firmware's messages go to the serial console too: a disk that does not boot says
        // so there (see spawn::firmware).
        push("--boot", "useserial=on".into());
        push(
            "--serial",
            path_option("pty,log.file=", &self.console_log, ",log.append=off"),
        );
        push("--virt-type", self.accel.virt_type_arg().into());
        if self.accel == Accel::Tcg {
            push(
                "--xml",
                format!("./features/tcg/tb-cache={}", self.tb_cache_mib).into(),
            );
            push("--xml", "./features/tcg/tb-cache/@unit=MiB".into());
        }
        push(
            own::METADATA,
            format!("description={}", self.metadata).into(),
        );
        a.extend(self.extra_args.iter().map(OsString::from));
        a.push(own::IMPORT.into());
        a.push(own::NOAUTOCONSOLE.into());
        a
    }

    /// The same command with `--print-xml`: virt-install prints the domain XML and defines nothing.
    pub fn print_xml_argv(&self) -> Vec<OsString> {
        let mut a = self.argv();
        a.push(own::PRINT_XML.into());
        a
    }
}

/// A define error that goes away when tried again.
fn is_transient(stderr: &str) -> bool {
    stderr.contains("asynchronous jobs running")
}

/// `prefix` + path + `suffix` as one OsString, without a lossy UTF-8 round trip.
fn path_option(prefix: &str, path: &std::path::Path, suffix: &str) -> OsString {
    let mut s = OsString::from(prefix);
    s.push(path.as_os_str());
    s.push(suffix);
    s
}

/// virt-install splits option values at `,` and `=`; a path holding either cannot be passed.
pub fn check_path(path: &std::path::Path) -> Result<(), CommaInPath> {
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.contains(&b',') {
        return Err(CommaInPath(path.to_path_buf()));
    }
    Ok(())
}

/// A path virt-install would split.
#[derive(Debug, thiserror::Error)]
#[error("{} contains a ',', which virt-install cannot take in a --disk or --serial path", .0.display())]
pub struct CommaInPath(pub std::path::PathBuf);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::mac::Nic;

    fn sample(accel: Accel) -> VirtInstall {
        VirtInstall {
            connect: "qemu:///system".into(),
            name: "vnode03".into(),
            memory_mib: 256,
            vcpus: 1,
            osinfo: "debian11".into(),
            disk: "/var/lib/vnode/nodes/vnode03/disk.qcow2".into(),
            seed: "/var/lib/vnode/nodes/vnode03/seed.iso".into(),
            private_nic: NicSpec {
                source: NetSource::Network("default".into()),
                mac: Mac::for_node(0, Nic::Private, 3),
            },
            public_nic: NicSpec {
                source: NetSource::Bridge("br0".into()),
                mac: Mac::for_node(0, Nic::Public, 3),
            },
            console_log: "/var/lib/vnode/nodes/vnode03/console.log".into(),
            accel,
            tb_cache_mib: TB_CACHE_MIB,
            metadata: DomainMetadata {
                pool: "vnode".into(),
                number: 3,
                image: "debian-12".into(),
            },
            extra_args: Vec::new(),
        }
    }

    fn strings(v: Vec<OsString>) -> Vec<String> {
        v.into_iter().map(|s| s.into_string().unwrap()).collect()
    }

    #[test]
    fn tcg_argv_is_the_one_that_booted_in_the_lab() {
        let argv = strings(sample(Accel::Tcg).argv());
        let expected = [
            "--connect",
            "qemu:///system",
            "--name",
            "vnode03",
            "--memory",
            "256",
            "--vcpus",
            "1",
            "--osinfo",
            "debian11",
            "--disk",
            "path=/var/lib/vnode/nodes/vnode03/disk.qcow2,format=qcow2,bus=virtio",
            "--disk",
            "path=/var/lib/vnode/nodes/vnode03/seed.iso,device=cdrom,bus=scsi,readonly=on",
            "--network",
            "network=default,model=virtio,mac=52:54:00:10:00:03",
            "--network",
            "bridge=br0,model=virtio,mac=52:54:00:00:00:03",
            "--graphics",
            "none",
            "--boot",
            "useserial=on",
            "--serial",
            "pty,log.file=/var/lib/vnode/nodes/vnode03/console.log,log.append=off",
            "--virt-type",
            "qemu",
            "--xml",
            "./features/tcg/tb-cache=128",
            "--xml",
            "./features/tcg/tb-cache/@unit=MiB",
            "--metadata",
            "description=vnode:v1 pool=vnode number=3 image=debian-12",
            "--import",
            "--noautoconsole",
        ];
        assert_eq!(argv, expected);
    }

    #[test]
    fn the_configs_extra_args_come_after_vnodes_and_before_import() {
        let mut v = sample(Accel::Tcg);
        v.extra_args = vec!["--memballoon".into(), "none".into()];
        let argv = strings(v.argv());
        let at = argv.iter().position(|a| a == "--memballoon").unwrap();
        assert_eq!(argv[at + 1], "none");
        assert_eq!(&argv[at + 2..], ["--import", "--noautoconsole"]);
        assert!(argv[..at].iter().any(|a| a == "--metadata"));
    }

    /// The options the config may not give are the ones vnode really passes.
    #[test]
    fn every_option_vnode_keeps_to_itself_is_one_it_passes() {
        use crate::config::virt_install_args::PASSED;
        let argv = sample(Accel::Tcg).print_xml_argv();
        for option in PASSED {
            assert!(argv.iter().any(|a| a == option), "{option} is not passed");
        }
    }

    #[test]
    fn kvm_has_no_tcg_cache_and_print_xml_only_adds_the_flag() {
        let v = sample(Accel::Kvm);
        let argv = strings(v.argv());
        assert!(!argv.iter().any(|a| a.contains("tb-cache")));
        let i = argv.iter().position(|a| a == "--virt-type").unwrap();
        assert_eq!(argv[i + 1], "kvm");
        let mut with = strings(v.print_xml_argv());
        assert_eq!(with.pop().as_deref(), Some("--print-xml"));
        assert_eq!(with, argv);
    }

    #[test]
    fn description_round_trips_and_foreign_ones_are_not_ours() {
        let m = sample(Accel::Kvm).metadata;
        assert_eq!(
            DomainMetadata::from_description(&m.to_string()),
            Some(m.clone())
        );
        let later = format!("{m} owner=alice");
        assert_eq!(DomainMetadata::from_description(&later), Some(m));
        assert_eq!(DomainMetadata::from_description("my test vm"), None);
        assert_eq!(DomainMetadata::from_description(""), None);
        assert_eq!(
            DomainMetadata::from_description("vnode:v1 pool=a number=x image=b"),
            None
        );
    }

    /// A virt-install that fails the way parallel defines race on a storage pool, `fails` times,
    /// then succeeds: the runner retries it; a different error is not retried.
    fn fake_virt_install(dir: &std::path::Path, fails: u32, error: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let script = dir.join("virt-install");
        let count = dir.join("count");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nn=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}\n\
                 if [ $n -le {fails} ]; then echo 'ERROR    {error}' >&2; exit 1; fi\nexit 0\n",
                c = count.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    #[test]
    fn transient_define_errors_are_retried_others_are_not() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let v = sample(Accel::Tcg);
        let busy = "Error: pool 'default' has asynchronous jobs running.";
        let dir = tempfile::tempdir().unwrap();
        let fake = fake_virt_install(dir.path(), 2, busy);
        assert_eq!(rt.block_on(v.run_program(fake.as_os_str())).unwrap(), 3);
        let dir = tempfile::tempdir().unwrap();
        let fake = fake_virt_install(dir.path(), 9, busy);
        match rt.block_on(v.run_program(fake.as_os_str())) {
            Err(VirtInstallError::Failed {
                attempts,
                last_line,
            }) => {
                assert_eq!(attempts, ATTEMPTS);
                assert!(last_line.contains("asynchronous jobs"), "{last_line}");
            }
            other => panic!("{other:?}"),
        }
        let dir = tempfile::tempdir().unwrap();
        let fake = fake_virt_install(dir.path(), 1, "Domain with name 'vnode03' already exists");
        match rt.block_on(v.run_program(fake.as_os_str())) {
            Err(VirtInstallError::Failed {
                attempts: 1,
                last_line,
            }) => {
                assert!(last_line.contains("already exists"), "{last_line}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn paths_with_commas_are_refused() {
        assert!(check_path(std::path::Path::new("/a/b,c/disk.qcow2")).is_err());
        assert!(check_path(std::path::Path::new("/a/b c/disk.qcow2")).is_ok());
    }
}
