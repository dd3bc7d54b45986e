"""The compiler's graph IR: constants and validators (`checks`), one frozen dataclass per node
(`nodes`) and the `Graph` of nodes and edges (`graph`). Import everything from here."""
from lsnn.compiler.ir.graph import *  # noqa: F401,F403
from lsnn.compiler.ir.graph import __all__  # noqa: F401
