"""The texts the model reads: a task to solve (training and prediction), and the edit prompt.

Prediction and test-time training use plain text, not the chat template: the domain builds the
training examples without a tokenizer, and the evaluator must feed the model exactly the prompt
it was trained on. The edit prompt goes through the generator, which applies the chat template.
"""

from __future__ import annotations

from collections.abc import Sequence

from seal_domains.arc.grids import Grid, to_text
from seal_domains.arc.selfedit import DEFAULT, Limits

SOLVE_HEADER = "Each input grid is turned into its output grid by the same rule. Digits are colours."


def task_text(demos: Sequence[tuple[Grid, Grid]], query: Grid) -> str:
    """The prompt of one prediction: demonstrations, then the query input; the answer follows
    it as the output grid's text (:func:`seal_domains.arc.grids.to_text`)."""
    parts = [SOLVE_HEADER]
    for i, (inp, out) in enumerate(demos, 1):
        parts.append(f"Example {i}\nInput:\n{to_text(inp)}\nOutput:\n{to_text(out)}")
    parts.append(f"Test\nInput:\n{to_text(query)}\nOutput:\n")
    return "\n\n".join(parts)


def demonstrations_text(demos: Sequence[tuple[Grid, Grid]]) -> str:
    """The demonstrations alone: a task's context."""
    return "\n\n".join(f"Example {i}\nInput:\n{to_text(a)}\nOutput:\n{to_text(b)}" for i, (a, b) in enumerate(demos, 1))


EDIT_PROMPT = """Puzzle examples. Each input grid is turned into its output grid by the same rule. Digits are colours.

{demos}

Before solving the puzzle you will train yourself on these examples. Choose how, with a JSON object with these keys:
"basic": true or false (also train on rotated, flipped and transposed copies)
"size": true or false (also train on copies with every cell doubled)
"chain": true or false (also train on rotated or flipped copies with every cell doubled)
"repeat": true or false (also train on copies with each grid tiled twice)
"strategy": "output" (learn only the output grids) or "all" (learn the whole examples)
"learning_rate": a number from {min_lr} to {max_lr}
"num_train_epochs": a whole number from 1 to {max_epochs}

Write only the JSON object that configures training on these examples. Start your reply with {{ like this:
{example}"""


def edit_prompt(demos: Sequence[tuple[Grid, Grid]], limits: Limits) -> str:
    """The prompt that asks for a self-edit (the JSON described in :mod:`seal_domains.arc.selfedit`)."""
    return EDIT_PROMPT.format(demos=demonstrations_text(demos), min_lr=limits.min_learning_rate,
                              max_lr=limits.max_learning_rate, max_epochs=limits.max_epochs,
                              example=DEFAULT.to_json())
