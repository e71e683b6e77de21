"""The course's rules: which layers the model may contain and which torch.nn names the model code may touch."""
import ast
import re

import torch
import torch.nn as nn

from tools.notebook import code_cells, definitions

# Part 5 as handed out. Any edit to the notebook's Part 5 cell fails here.
PART5 = '''# Part 5: DO NOT MODIFY
class myConvolution(nn.Module):
    def __init__(self, input_channel, output_channel, kernel_size=1, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(input_channel, output_channel, kernel_size, stride, padding)

    def forward(self, x):
        return self.conv(x)


class myActivation(nn.Module):
    def __init__(self):
        super().__init__()
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(x)


class myMaxPooling(nn.Module):
    def __init__(self, kernel_size=2, stride=2, padding=0):
        super().__init__()
        self.pool = nn.MaxPool2d(kernel_size, stride, padding)

    def forward(self, x):
        return self.pool(x)


class myAvgPooling(nn.Module):
    def __init__(self, kernel_size=2, stride=2, padding=0):
        super().__init__()
        self.pool = nn.AvgPool2d(kernel_size, stride, padding)

    def forward(self, x):
        return self.pool(x)'''

CONTAINERS = {"Sequential", "Identity", "ModuleList"}
ALLOWED_NN = {  # torch.nn names each part's code may use
    "part4": {"Module", "Parameter"},
    "part6": {"Module"} | CONTAINERS,
    "part7": {"Module", "Flatten"} | CONTAINERS,
    "testtime": set(),  # what forward calls outside training: tensor functions only
    "storage": set(),
}
LAYER_LIKE = re.compile(r"conv|pool|norm|linear|relu|gelu|elu|silu|sigmoid|softmax|dropout|functional|interpolate",
                        re.IGNORECASE)


def test_part5_is_verbatim():
    cells = code_cells("part5")
    assert len(cells) == 1
    assert cells[0].strip() == PART5


def nn_names(tree):
    """Every X in nn.X or torch.nn.X."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            base = node.value
            if (isinstance(base, ast.Name) and base.id == "nn") or (
                    isinstance(base, ast.Attribute) and base.attr == "nn"
                    and isinstance(base.value, ast.Name) and base.value.id == "torch"):
                yield node.attr


def test_model_code_uses_only_allowed_torch_nn_names():
    for part, allowed in ALLOWED_NN.items():
        cells = code_cells(part)
        assert cells, f"no cell tagged {part}"
        for source in cells:
            tree = ast.parse(source)
            assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))], \
                f"{part} imports something"
            used = set(nn_names(tree))
            assert used <= allowed, f"{part} uses torch.nn.{sorted(used - allowed)}"
            names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
            assert not names & {"F", "functional"}, f"{part} uses torch.nn.functional"
            torch_functions = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                               and isinstance(n.value, ast.Name) and n.value.id == "torch"}
            layer_calls = {f for f in torch_functions if LAYER_LIKE.search(f)}
            assert not layer_calls, f"{part} calls a ready-made layer function: torch.{sorted(layer_calls)}"


def test_static_check_catches_violations():
    bad = "class X(nn.Module):\n    def f(self, x):\n        return torch.nn.functional.relu(nn.Linear(2, 2)(x))\n"
    tree = ast.parse(bad)
    assert set(nn_names(tree)) == {"Module", "functional", "Linear"}
    assert LAYER_LIKE.search("batch_norm") and LAYER_LIKE.search("conv2d") and not LAYER_LIKE.search("sqrt")


def test_model_contains_only_allowed_modules(nb):
    own = {nb.myResNet, nb.myResBlock, nb.myBatchNorm, nb.myConvolution, nb.myActivation,
           nb.myMaxPooling, nb.myAvgPooling, nn.Sequential, nn.Identity, nn.ModuleList, nn.Flatten}
    wrapped = {nb.myConvolution: nn.Conv2d, nb.myActivation: nn.ReLU,
               nb.myMaxPooling: nn.MaxPool2d, nb.myAvgPooling: nn.AvgPool2d}
    model = nb.myResNet()
    seen = set()
    for parent in model.modules():
        for child in parent.children():
            if type(parent) in wrapped:
                assert type(child) is wrapped[type(parent)], f"{type(parent).__name__} wraps {type(child)}"
            else:
                assert type(child) in own, f"{type(child).__name__} is not an allowed layer"
            seen.add(type(child))
    assert not any(issubclass(t, (nn.Linear, nn.modules.batchnorm._BatchNorm)) for t in seen)
    assert {nb.myResBlock, nb.myBatchNorm, nb.myConvolution} <= seen


def parameter_names():
    return [t.id for node in ast.parse(code_cells("parameters")[0]).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)]


def bound_names(target):
    """The names an assignment target binds: itself, or those it unpacks into (not names inside a subscript)."""
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from bound_names(element)
    elif isinstance(target, ast.Starred):
        yield from bound_names(target.value)


def assigned_names(tree):
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.comprehension)) else []
        for target in targets:
            yield from bound_names(target)


def test_each_parameter_is_assigned_exactly_once():
    """In the parameters cell and nowhere else: papermill overrides only that cell, so a later assignment would
    silently undo an override."""
    names = parameter_names()
    twice = sorted({n for n in names if names.count(n) > 1})
    assert not twice, f"assigned twice in the parameters cell: {twice}"
    for source in code_cells()[1:]:
        again = set(assigned_names(ast.parse(source))) & set(names)
        assert not again, f"a cell reassigns {sorted(again)}"


def test_no_function_default_or_field_restates_a_constant():
    """Knobs and gates are read where they are used, so that an override reaches every use; a default bound to a
    constant (or a dataclass field copying one) would keep the value it had when the cell ran."""
    for source in code_cells():
        for node in ast.walk(ast.parse(source)):
            defaults = node.args.defaults + node.args.kw_defaults if isinstance(
                node, (ast.FunctionDef, ast.Lambda)) else [node.value] if isinstance(node, ast.AnnAssign) else []
            bound = [d.id for d in defaults if isinstance(d, ast.Name) and d.id.isupper()]
            assert not bound, f"{getattr(node, 'name', 'a field')} binds {bound} as a default"


def test_every_parameter_is_used():
    code = [ast.parse(source) for source in code_cells()[1:]]
    read = {n.id for tree in code for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    assert not set(parameter_names()) - read, f"knobs nothing reads: {sorted(set(parameter_names()) - read)}"
