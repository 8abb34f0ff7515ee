//! Certificates made with `openssl` for the TLS tests: a CA, a server
//! certificate for 127.0.0.1 and a client certificate, all signed by the CA.

use std::path::PathBuf;
use std::process::Command;
use tempfile::TempDir;

/// A CA and the certificates it signed, as PEM files in a temp directory.
pub struct Certs {
    /// Where the files are; removed when dropped.
    dir: TempDir,
}

impl Certs {
    /// Makes `ca.crt`, `server.crt`/`server.key` and `client.crt`/`client.key`.
    pub fn generate() -> Certs {
        let dir = tempfile::tempdir().expect("creating the certificates' temp dir");
        let certs = Certs { dir };
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        certs.openssl(
            &["req", "-x509"],
            &key,
            &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=jobrunner test CA"],
        );
        for (name, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
            let (csr, crt, keyfile) = (format!("{name}.csr"), format!("{name}.crt"), format!("{name}.key"));
            certs.openssl(
                &["req"],
                &key,
                &["-keyout", &keyfile, "-out", &csr, "-subj", &format!("/CN={name}")],
            );
            let ext = format!("{name}.ext");
            std::fs::write(
                certs.path(&ext),
                format!("basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n"),
            )
            .expect("writing the extensions file");
            certs.openssl(
                &["x509", "-req"],
                &[],
                &[
                    "-in",
                    &csr,
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &crt,
                    "-days",
                    "2",
                    "-extfile",
                    &ext,
                ],
            );
        }
        certs
    }

    /// The path of one of the files, e.g. `ca.crt`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn openssl(&self, command: &[&str], key: &[&str], rest: &[&str]) {
        let output = Command::new("openssl")
            .args(command)
            .args(key)
            .args(rest)
            .current_dir(self.dir.path())
            .output()
            .expect("running openssl");
        assert!(output.status.success(), "openssl {command:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
}
