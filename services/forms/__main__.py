from services.forms.service import build
from services.runtime.server import main

if __name__ == "__main__":
    main("forms", build)
