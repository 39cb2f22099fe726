#include "inference_worker/engine/prefill_outcome.h"

namespace semshare {

PrefillOutcome PrefillOutcome::Clone() const {
  PrefillOutcome copy = *this;  // the scalars and strings; the tensors are replaced below
  copy.cache = cache.Clone();
  if (logits.defined()) copy.logits = logits.clone();
  for (LayerAttentionStats& layer : copy.stats) {
    for (at::Tensor* t : layer.tensors()) {
      if (t->defined()) *t = t->clone();
    }
  }
  return copy;
}

}  // namespace semshare
