//! The wrk Lua scripts each workload runs: one request shape, or a line
//! per request from a file of bodies.

use std::path::{Path, PathBuf};

use crate::*;

/// A wrk script cycling through the lines of `file`, each wrk thread
/// starting at its own half, so that no line is sent twice in a run shorter
/// than the list; `request` is the Lua expression that makes a request of
/// `line`.
pub(crate) fn lines_script(scripts: &Path, name: &str, file: &Path, request: &str) -> PathBuf {
    let path = scripts.join(format!("{name}.lua"));
    std::fs::write(
        &path,
        format!(
            r#"local n = 0
function setup(thread)
  thread:set("tid", n)
  n = n + 1
end
local lines = {{}}
for line in io.lines("{}") do lines[#lines + 1] = line end
function init(args)
  i = (tid or 0) * math.floor(#lines / 2)
end
request = function()
  i = i + 1
  local line = lines[(i % #lines) + 1]
  return {request}
end
"#,
            file.display()
        ),
    )
    .unwrap_or_else(|e| fail(&e.to_string()));
    path
}

/// A wrk script posting the token-request bodies of `file` (one per line).
pub(crate) fn bodies_script(scripts: &Path, name: &str, file: &Path) -> PathBuf {
    lines_script(
        scripts,
        name,
        file,
        r#"wrk.format("POST", "/oauth/token", { ["Content-Type"] = "application/x-www-form-urlencoded" }, line)"#,
    )
}

pub(crate) fn lua_list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("{i:?}"))
        .collect::<Vec<_>>()
        .join(",\n")
}

pub(crate) fn script(
    dir: &Path,
    name: &str,
    path: &str,
    content_type: &str,
    auths: &[String],
    bodies: &[String],
) -> PathBuf {
    let text = format!(
        r#"local auths = {{ {auths} }}
local bodies = {{ {bodies} }}
local i = math.random(1, 100000)
request = function()
  i = i + 1
  local h = {{ ["Content-Type"] = "{content_type}" }}
  if #auths > 0 then h["Authorization"] = auths[(i % #auths) + 1] end
  return wrk.format("POST", "{path}", h, bodies[(i % #bodies) + 1])
end
"#,
        auths = lua_list(auths),
        bodies = lua_list(bodies),
    );
    let file = dir.join(format!("{name}.lua"));
    std::fs::write(&file, text).unwrap_or_else(|e| fail(&e.to_string()));
    file
}
