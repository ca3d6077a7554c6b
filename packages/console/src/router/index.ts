export { Link, navigate, usePath } from "./router.js";
