from services.forms.service import SPEC
from services.runtime.server import main

main(SPEC)
