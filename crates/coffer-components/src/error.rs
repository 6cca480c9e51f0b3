use coffer_engine::EngineError;

/// Why a component's backup or restore failed. Every variant names the
/// component; tool failures carry the tool's own words (its standard error).
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    /// The spec, a secret or the restore options are unusable; nothing was done.
    #[error("component {component:?}: {message}")]
    InvalidInput {
        /// The component.
        component: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// An external program (`pg_dump`, `redis-cli`, a custom command…) failed.
    #[error("component {component:?}: {message}")]
    Tool {
        /// The component.
        component: String,
        /// The program, its exit status and the tail of its standard error.
        message: String,
    },
    /// The restored data failed verification (integrity check, key count…).
    #[error("component {component:?}: restored data failed verification: {message}")]
    Verification {
        /// The component.
        component: String,
        /// What did not match.
        message: String,
    },
    /// A local file operation failed.
    #[error("component {component:?}: {context}: {source}")]
    Io {
        /// The component.
        component: String,
        /// What was being done, with the path.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The engine failed (repository, storage, incomplete backup…).
    #[error("component {component:?}: {source}")]
    Engine {
        /// The component.
        component: String,
        /// The engine's error.
        source: EngineError,
    },
}

impl ComponentError {
    /// The component this error is about.
    pub fn component(&self) -> &str {
        match self {
            Self::InvalidInput { component, .. }
            | Self::Tool { component, .. }
            | Self::Verification { component, .. }
            | Self::Io { component, .. }
            | Self::Engine { component, .. } => component,
        }
    }
}

/// Builds errors for one component.
#[derive(Clone)]
pub(crate) struct Ctx(pub String);

impl Ctx {
    pub fn invalid(&self, message: impl Into<String>) -> ComponentError {
        ComponentError::InvalidInput {
            component: self.0.clone(),
            message: message.into(),
        }
    }
    pub fn tool(&self, message: impl Into<String>) -> ComponentError {
        ComponentError::Tool {
            component: self.0.clone(),
            message: message.into(),
        }
    }
    pub fn verification(&self, message: impl Into<String>) -> ComponentError {
        ComponentError::Verification {
            component: self.0.clone(),
            message: message.into(),
        }
    }
    pub fn io(&self, context: impl Into<String>, source: std::io::Error) -> ComponentError {
        ComponentError::Io {
            component: self.0.clone(),
            context: context.into(),
            source,
        }
    }
    pub fn engine(&self, source: EngineError) -> ComponentError {
        ComponentError::Engine {
            component: self.0.clone(),
            source,
        }
    }
}
