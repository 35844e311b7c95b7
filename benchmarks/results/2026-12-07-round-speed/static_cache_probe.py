import time, torch
from seal_core.models.loading import load_model
from seal_core.models.prompting import format_prompt
from seal_core.evaluation.qa import QUESTION_PROMPT
from seal_domains.knowledge import KnowledgeDomain, KnowledgeOptions
from seal_core.models.generation import FirstLineDone
m = load_model('embedded'); model, tok = m.model, m.tokenizer
d = KnowledgeDomain().configured(KnowledgeOptions())
tasks = d.load_tasks('train', 'synthetic:400:1')[:12]
qa = [format_prompt(tok, QUESTION_PROMPT.format(question=q['question'])) for t in tasks[:8] for q in t.evaluation['questions']]
edits = [format_prompt(tok, d.edit_prompt(t)) for t in tasks[:12]]
tok.padding_side = 'left'
def run(inputs, n, impl, first_line):
    enc = tok(inputs, return_tensors='pt', padding=True, add_special_tokens=False)
    kw = dict(cache_implementation='static', disable_compile=True) if impl == 'static' else {}
    if first_line: kw['stopping_criteria'] = [FirstLineDone(tok, enc['input_ids'].shape[1])]
    t = time.perf_counter()
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id, **kw)
    return time.perf_counter() - t, tok.batch_decode(out[:, enc['input_ids'].shape[1]:])
for name, inputs, n, fl in (('qa', qa, 24, True), ('edits', edits, 128, False)):
    res = {}
    for rep in range(2):
        for impl in ('dynamic', 'static'):
            s, texts = run(inputs, n, impl, fl); res.setdefault(impl, []).append(round(s, 2)); res[impl + '_t'] = texts
    same = sum(a == b for a, b in zip(res['dynamic_t'], res['static_t']))
    print(name, len(inputs), res['dynamic'], res['static'], 'same', same, flush=True)
