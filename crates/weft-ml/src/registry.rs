//! Models on disk. A model directory holds `model.json` (every target's
//! model), `card.json` and `card.md`, and whatever spec it was built from;
//! the registry keeps numbered versions of named models in such directories
//! (`NAME/v0001/…`) with a stage each: a new version is a candidate, and only
//! an explicit promotion makes one the production version that scoring uses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::card::Card;
use crate::model::Model;
use crate::{MlError, Result};

const FORMAT: &str = "weft-ml/1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    pub format: String,
    pub name: String,
    pub version: Option<u32>,
    /// The target scored as "the" score; the others are extra outcomes (per category).
    pub primary: String,
    pub targets: BTreeMap<String, Model>,
}

impl ModelFile {
    pub fn new(name: &str, primary: &str, targets: BTreeMap<String, Model>) -> Self {
        Self {
            format: FORMAT.into(),
            name: name.into(),
            version: None,
            primary: primary.into(),
            targets,
        }
    }

    pub fn primary_model(&self) -> &Model {
        &self.targets[&self.primary]
    }
}

/// Writes a model directory: the model, its card, and extra files (name, text).
pub fn save_dir(dir: &Path, file: &ModelFile, card: &Card, extra: &[(&str, &str)]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    write_atomic(&dir.join("model.json"), &pretty(file))?;
    write_atomic(&dir.join("card.json"), &pretty(card))?;
    write_atomic(&dir.join("card.md"), &card.markdown())?;
    for (name, text) in extra {
        write_atomic(&dir.join(name), text)?;
    }
    Ok(())
}

pub fn load_dir(dir: &Path) -> Result<ModelFile> {
    let path = dir.join("model.json");
    let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
    let file: ModelFile = serde_json::from_str(&text)
        .map_err(|e| MlError::Input(format!("{} is not a weft model: {e}", path.display())))?;
    if file.format != FORMAT {
        return Err(MlError::Input(format!(
            "{} has format {:?}; this weft reads {FORMAT:?}",
            path.display(),
            file.format
        )));
    }
    if !file.targets.contains_key(&file.primary) {
        return Err(MlError::Input(format!(
            "{}: the primary target {:?} has no model",
            path.display(),
            file.primary
        )));
    }
    Ok(file)
}

pub fn load_card(dir: &Path) -> Result<Card> {
    let path = dir.join("card.json");
    let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| MlError::Input(format!("{}: {e}", path.display())))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Candidate,
    Production,
    Archived,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Candidate => "candidate",
            Stage::Production => "production",
            Stage::Archived => "archived",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionEntry {
    pub version: u32,
    pub stage: Stage,
    pub created_at: String,
    pub learner: String,
    /// Held-out ROC AUC of the primary target.
    pub roc_auc: Option<f64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    versions: Vec<VersionEntry>,
}

pub struct Registry {
    root: PathBuf,
}

impl Registry {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn dir(&self, name: &str, version: u32) -> PathBuf {
        self.root.join(name).join(format!("v{version:04}"))
    }

    fn index_path(&self, name: &str) -> PathBuf {
        self.root.join(name).join("registry.json")
    }

    fn index(&self, name: &str) -> Result<Index> {
        let path = self.index_path(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| MlError::Input(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(io(&path, e)),
        }
    }

    fn save_index(&self, name: &str, index: &Index) -> Result<()> {
        write_atomic(&self.index_path(name), &pretty(index))
    }

    /// Stores a new candidate version; its directory is complete before the index names it.
    pub fn register(
        &self,
        mut file: ModelFile,
        mut card: Card,
        extra: &[(&str, &str)],
    ) -> Result<VersionEntry> {
        check_name(&file.name)?;
        let name = file.name.clone();
        let mut index = self.index(&name)?;
        let version = index.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
        file.version = Some(version);
        card.version = Some(version);
        let primary = card.targets.iter().find(|t| t.target == file.primary);
        let entry = VersionEntry {
            version,
            stage: Stage::Candidate,
            created_at: card.created_at.clone(),
            learner: file.primary_model().learner.name().into(),
            roc_auc: primary.and_then(|t| t.held_out().roc_auc),
        };
        save_dir(&self.dir(&name, version), &file, &card, extra)?;
        index.versions.push(entry.clone());
        self.save_index(&name, &index)?;
        Ok(entry)
    }

    pub fn versions(&self, name: &str) -> Result<Vec<VersionEntry>> {
        Ok(self.index(name)?.versions)
    }

    /// Every model name in the registry.
    pub fn names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
            Err(e) => return Err(io(&self.root, e)),
        };
        for entry in entries.flatten() {
            if entry.path().join("registry.json").exists() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Makes `version` the production one; the one before it is archived.
    pub fn promote(&self, name: &str, version: u32) -> Result<()> {
        let mut index = self.index(name)?;
        if !index.versions.iter().any(|v| v.version == version) {
            let known: Vec<String> = index
                .versions
                .iter()
                .map(|v| v.version.to_string())
                .collect();
            return Err(MlError::Input(format!(
                "model {name} has no version {version} (versions: {})",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            )));
        }
        for entry in &mut index.versions {
            if entry.version == version {
                entry.stage = Stage::Production;
            } else if entry.stage == Stage::Production {
                entry.stage = Stage::Archived;
            }
        }
        self.save_index(name, &index)
    }

    pub fn production(&self, name: &str) -> Result<Option<(VersionEntry, ModelFile)>> {
        let index = self.index(name)?;
        let Some(entry) = index
            .versions
            .into_iter()
            .find(|v| v.stage == Stage::Production)
        else {
            return Ok(None);
        };
        let file = load_dir(&self.dir(name, entry.version))?;
        Ok(Some((entry, file)))
    }
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(MlError::Input(format!(
            "{name:?} is not a model name (letters, digits, _ and -, at most 64)"
        )))
    }
}

/// Written beside, then renamed: a reader sees the old file or the new one.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    }
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, text).map_err(|e| io(&temp, e))?;
    std::fs::rename(&temp, path).map_err(|e| io(path, e))
}

fn io(path: &Path, error: std::io::Error) -> MlError {
    MlError::Io(format!("{}: {error}", path.display()))
}

fn pretty(value: &impl Serialize) -> String {
    serde_json::to_string_pretty(value).expect("models and cards serialise")
}
