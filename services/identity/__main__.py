from services.identity.service import SPEC
from services.runtime.server import main

main(SPEC)
