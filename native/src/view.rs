//! Views of the trigger table, as Python hands them over, cached by interval.

use super::*;

// The trigger table, as Python's views hand it over ----------------------------------------

pub(crate) struct Candidate {
    pub(crate) position: usize,
    pub(crate) allow_backwards: bool,
    pub(crate) trigger_id: String,
    pub(crate) code: &'static str,
    pub(crate) stage: u32,
    pub(crate) stage_text: String,
    pub(crate) params: Vec<Param>,
    pub(crate) condition: Option<Condition>,
    pub(crate) trigger: PyObject,
}

pub(crate) struct View {
    pub(crate) positions: HashMap<u32, usize>,
    pub(crate) by_code: Vec<Vec<Candidate>>,
    pub(crate) any: bool,
}

/// A view as Python hands it over: stage ids in order, then candidate tuples.
pub(crate) type ViewSpec<'py> = (Vec<String>, Vec<Bound<'py, PyTuple>>);

pub(crate) struct CachedView {
    pub(crate) category: u32,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) view: Option<Arc<View>>,
}

pub(crate) fn clause(field: &str, op: &str, value: &str) -> PyResult<Clause> {
    let (event, name) = match field.strip_prefix("event.") {
        Some(name) => (true, name),
        None => (false, field),
    };
    Ok(Clause {
        event,
        name: name.to_owned(),
        op: Op::parse(op).ok_or_else(|| PyValueError::new_err(format!("unknown operator {op}")))?,
        value: serde_json::from_str(value)
            .map_err(|e| PyValueError::new_err(format!("condition value {value}: {e}")))?,
    })
}

impl NativeBoard {
    pub(crate) fn view(
        &mut self,
        py: Python<'_>,
        tenant: &str,
        entity: &str,
        category: u32,
        at: i64,
    ) -> PyResult<Option<Arc<View>>> {
        let scope_len = tenant.len() + 1 + entity.len();
        let mut scope = String::with_capacity(scope_len);
        scope.push_str(tenant);
        scope.push('/');
        scope.push_str(entity);
        if let Some(cached) = self.views.get(scope.as_str()) {
            if let Some(c) = cached.iter().find(|c| c.category == category) {
                if c.start <= at && at < c.end {
                    return Ok(c.view.clone());
                }
            }
        }
        let category_text = self.names.text(category).to_owned();
        let answer = self
            .hooks
            .bind(py)
            .call_method1("view", (tenant, entity, &category_text, at))?;
        let (start, end, spec): (i64, i64, Option<ViewSpec>) = answer.extract()?;
        let view = match spec {
            None => None,
            Some((stages, candidates)) => Some(Arc::new(self.build_view(stages, candidates)?)),
        };
        let entry = CachedView {
            category,
            start,
            end,
            view: view.clone(),
        };
        let cached = self.views.entry(scope.into()).or_default();
        match cached.iter_mut().find(|c| c.category == category) {
            Some(c) => *c = entry,
            None => cached.push(entry),
        }
        Ok(view)
    }

    pub(crate) fn build_view(
        &mut self,
        stages: Vec<String>,
        candidates: Vec<Bound<PyTuple>>,
    ) -> PyResult<View> {
        let positions = stages
            .iter()
            .enumerate()
            .map(|(i, s)| (self.names.intern(s), i))
            .collect();
        let mut by_code: Vec<Vec<Candidate>> =
            (0..vocabulary().code_count()).map(|_| Vec::new()).collect();
        for c in candidates {
            let (code, position, allow_backwards, trigger_id, stage_text): (
                String,
                usize,
                bool,
                String,
                String,
            ) = (
                c.get_item(0)?.extract()?,
                c.get_item(1)?.extract()?,
                c.get_item(2)?.extract()?,
                c.get_item(3)?.extract()?,
                c.get_item(4)?.extract()?,
            );
            let params_spec: Vec<(String, String, Bound<PyAny>)> = c.get_item(5)?.extract()?;
            let condition_spec: Option<Vec<Vec<(String, String, String)>>> =
                c.get_item(6)?.extract()?;
            let trigger: PyObject = c.get_item(7)?.unbind();
            let condition = match condition_spec {
                None => None,
                Some(groups) => Some(Condition {
                    groups: groups
                        .into_iter()
                        .map(|group| {
                            group
                                .into_iter()
                                .map(|(field, op, value)| clause(&field, &op, &value))
                                .collect::<PyResult<Vec<Clause>>>()
                        })
                        .collect::<PyResult<Vec<Vec<Clause>>>>()?,
                }),
            };
            let index = vocabulary()
                .code_number(&code)
                .ok_or_else(|| PyValueError::new_err(format!("unknown trigger code {code}")))?;
            let mut params = Vec::with_capacity(params_spec.len());
            for (name, how, expected) in params_spec {
                params.push(match how.as_str() {
                    "eq" => Param::Eq(name, expected.extract()?),
                    "prefix" => Param::Prefix(name, expected.extract()?),
                    "substring" => Param::Substring(name, expected.extract()?),
                    "fields" => Param::Fields(expected.extract()?),
                    "any_field" => Param::AnyField,
                    other => {
                        return Err(PyValueError::new_err(format!("unknown param rule {other}")))
                    }
                });
            }
            let stage = self.names.intern(&stage_text);
            by_code[index].push(Candidate {
                position,
                allow_backwards,
                trigger_id,
                code: vocabulary().code(index),
                stage,
                stage_text,
                params,
                condition,
                trigger,
            });
        }
        let any = by_code.iter().any(|c| !c.is_empty());
        Ok(View {
            positions,
            by_code,
            any,
        })
    }
}
